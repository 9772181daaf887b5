process FIGURES {
    tag "${meta.id}"
    label 'process_single'

    input:
    // cases: CSV text (figure,kind,label,path) naming the staged volumes/ files: for each task
    // cell of one test subject, the source, every method's synthesis and the ground truth
    tuple val(meta), val(cases), path(volumes, stageAs: 'volumes/*')

    output:
    tuple val(meta), path('figures'), emit: figures
    path 'versions.yml'             , emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    # unicoal code ${task.ext.code}
    export MPLBACKEND=Agg
    printf '%b' '${cases.replace('\n', '\\n')}' > cases.csv
    unicoal figures --cases cases.csv --out-dir figures ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        matplotlib: \$(unicoal-python -c "from importlib.metadata import version; print(version('matplotlib'))")
    END_VERSIONS
    """

    stub:
    """
    # unicoal code ${task.ext.code}
    mkdir -p figures && touch figures/${meta.id}.png
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
