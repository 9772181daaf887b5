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
    # LR thickness = scale x the HR slice thickness read from the volume's grid
    hr=\$(unicoal geometry ${volume} | python3 -c 'import json, sys; print(json.load(sys.stdin)["grid"]["thickness"])')
    unicoal degrade ${volume} ${meta.id}.nii.gz --thickness \$(python3 -c "print(\$hr * ${meta.scale})") ${args}

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
