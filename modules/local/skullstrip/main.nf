process SKULLSTRIP {
    tag "${meta.id}"
    label 'process_medium'

    input:
    // co-registered volumes; modalities[i] names volumes[i]; label is passed through
    tuple val(meta), val(modalities), path(volumes, stageAs: 'raw??/*'), path(label, stageAs: 'rawlabel/*')

    output:
    // masked <MODALITY>.nii.gz, <MODALITY>_brainmask.nii.gz (+ <subject>_label.nii.gz)
    tuple val(meta), path('strip/*.nii.gz', arity: '1..*'), emit: bundle
    path 'versions.yml'                                    , emit: versions

    script:
    def args = task.ext.args ?: ''
    def vols = volumes instanceof List ? volumes : [volumes]
    def links = [modalities, vols].transpose().collect { pair -> "ln -sf \"\$(readlink -f ${pair[1]})\" src/${pair[0]}.nii.gz" }.join('\n    ')
    def source = modalities.contains('T1') ? '--t1 src/T1.nii.gz' : "--reference src/${modalities[0]}.nii.gz"
    def others = modalities.findAll { m -> m != (modalities.contains('T1') ? 'T1' : modalities[0]) }.collect { m -> "--input src/${m}.nii.gz" }.join(' ')
    """
    mkdir -p src strip
    ${links}

    unicoal skullstrip ${source} ${others} --out-dir strip --threads ${task.cpus} ${args}
    ${label ? "cp -L ${label} strip/${meta.id}_label.nii.gz" : ''}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        deepbet: \$(unicoal-python -c "from importlib.metadata import version; print(version('deepbet'))")
    END_VERSIONS
    """

    stub:
    """
    mkdir -p strip
    for m in ${modalities.join(' ')}; do touch strip/\$m.nii.gz; done
    touch strip/${modalities.contains('T1') ? 'T1' : modalities[0]}_brainmask.nii.gz
    ${label ? "touch strip/${meta.id}_label.nii.gz" : ''}
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
