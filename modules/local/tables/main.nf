process TABLES {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(rows, stageAs: 'rows/*'), path(stats)
    path configs, stageAs: 'configs'   // the plan's train configs: § on methods trained without the user's pretrained weights

    output:
    tuple val(meta), path('tables'), emit: tables
    path 'versions.yml'            , emit: versions

    script:
    def args = task.ext.args ?: ''
    def files = rows instanceof List ? rows : [rows]
    """
    # unicoal code ${task.ext.code}
    unicoal tables ${files.collect { f -> "--in ${f}" }.join(' ')} --stats ${stats} --configs configs --out-dir tables ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
    END_VERSIONS
    """

    stub:
    """
    # unicoal code ${task.ext.code}
    mkdir -p tables && touch tables/${meta.id}.csv tables/${meta.id}.md tables/${meta.id}.tex
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
