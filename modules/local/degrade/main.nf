process DEGRADE {
    tag "${meta.id}"
    label 'process_single'

    input:
    // meta.scale: the thickness ratio (LR thickness / HR thickness), meta.id the output stem
    tuple val(meta), path(volume, stageAs: 'in/*')

    output:
    tuple val(meta), path("${meta.id}.nii.gz"), emit: volume
    path 'versions.yml'                        , emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    unicoal degrade ${volume} ${meta.id}.nii.gz --factor ${meta.scale} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
    END_VERSIONS
    """

    stub:
    """
    touch ${meta.id}.nii.gz
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
