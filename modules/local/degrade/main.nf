process DEGRADE {
    tag "${meta.id}"
    label 'process_single'

    input:
    // one test subject: meta.specs lists the [modality, scale] inputs its synthesize jobs need
    // (scale: the thickness ratio, LR thickness / HR thickness); volumes: its normalised
    // <subject>_<MODALITY>.nii.gz
    tuple val(meta), path(volumes, stageAs: 'in/*')

    output:
    tuple val(meta), path('deg/*.nii.gz', arity: '1..*'), emit: volumes   // deg/<subject>_<MODALITY>_x<scale>.nii.gz
    path 'versions.yml'                                 , emit: versions

    script:
    def args = task.ext.args ?: ''
    def specs = meta.specs.collect { spec -> "${spec[0]} ${spec[1]}" }.join('\\n')
    """
    # unicoal code ${task.ext.code}
    mkdir -p deg
    printf '%b\\n' '${specs}' > specs.txt
    while read -r mod scale; do
        unicoal degrade "in/${meta.subject}_\$mod.nii.gz" "deg/${meta.subject}_\${mod}_x\$scale.nii.gz" --factor "\$scale" ${args}
    done < specs.txt

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
    END_VERSIONS
    """

    stub:
    def outs = meta.specs.collect { spec -> "deg/${meta.subject}_${spec[0]}_x${spec[1]}.nii.gz" }
    """
    # unicoal code ${task.ext.code}
    mkdir -p deg && touch ${outs.join(' ')}
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
