process STATS {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(rows, stageAs: 'rows/*')   // per-subject result rows of EVALUATE / SEGMENT / SEGMENT_REAL

    output:
    tuple val(meta), path('stats.csv'), emit: stats
    path 'versions.yml'               , emit: versions

    script:
    def args = task.ext.args ?: ''
    def files = rows instanceof List ? rows : [rows]
    """
    # unicoal code ${task.ext.code}
    unicoal stats ${files.collect { f -> "--in ${f}" }.join(' ')} --out stats.csv ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        scipy: \$(unicoal-python -c "from importlib.metadata import version; print(version('scipy'))")
    END_VERSIONS
    """

    stub:
    """
    # unicoal code ${task.ext.code}
    echo 'table,method,metric,p' > stats.csv
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
