process COHORT {
    tag "${meta.id}"
    label 'process_low'

    input:
    // meta: [id, dataset: phantom|ixi|brats, (phantom:) subjects, preset, seed];
    // root: the IXI / BraTS download (staged, so containers see it), or [] for the phantom
    tuple val(meta), path(root, stageAs: 'data_root')

    output:
    tuple val(meta), path('cohort/samplesheet.csv'), emit: samplesheet
    path 'cohort'                                 , emit: cohort
    path 'versions.yml'                           , emit: versions

    script:
    def args = task.ext.args ?: ''
    def source = meta.dataset == 'phantom'
        ? "phantom --out cohort --subjects ${meta.subjects} --preset ${meta.preset} --seed ${meta.seed}"
        : "${meta.dataset} --root data_root --out cohort/samplesheet.csv"
    """
    # unicoal code ${task.ext.code}
    unicoal cohort ${source} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
    END_VERSIONS
    """

    stub:
    """
    # unicoal code ${task.ext.code}
    mkdir -p cohort
    printf 'subject,modality,path,label,split\\n' > cohort/samplesheet.csv
    for i in \$(seq 1 ${meta.subjects ?: 3}); do
        s=sub-\$(printf %02d \$i)
        split=\$([ \$((i % 5)) -eq 1 ] && echo test || ([ \$((i % 5)) -eq 2 ] && echo val || echo train))
        mkdir -p cohort/\$s
        for m in T1 T2 PD FLAIR T1CE; do
            touch cohort/\$s/\$m.nii.gz
            echo "\$s,\$m,\$PWD/cohort/\$s/\$m.nii.gz,\$PWD/cohort/\$s/label.nii.gz,\$split" >> cohort/samplesheet.csv
        done
        touch cohort/\$s/label.nii.gz
    done
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
