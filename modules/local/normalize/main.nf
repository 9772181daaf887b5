process NORMALIZE {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(volume, stageAs: 'in/*'), path(mask, stageAs: 'mask/*')

    output:
    tuple val(meta), path("${meta.id}.nii.gz"), path("${meta.id}.json"), emit: volume
    path 'versions.yml'                                                 , emit: versions

    script:
    def args = task.ext.args ?: ''
    def mask_arg = mask ? "--mask ${mask}" : ''
    """
    unicoal normalize ${volume} ${meta.id}.nii.gz ${mask_arg} ${args}
    [ -e ${meta.id}.json ] || echo '{}' > ${meta.id}.json

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
    END_VERSIONS
    """

    stub:
    """
    touch ${meta.id}.nii.gz ${meta.id}.json
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
