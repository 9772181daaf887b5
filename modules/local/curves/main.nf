process CURVES {
    tag "${meta.id}"
    label 'process_single'

    input:
    // runs: the run folders of the trained models (TRAIN.out.run: <train id>/ with val.csv where
    // validation was on), staged under runs/; none when the plan trains nothing
    tuple val(meta), path(runs, stageAs: 'runs/*')
    path jobs                                        // the plan's jobs CSV: each model's tables and method

    output:
    tuple val(meta), path('curves'), emit: curves
    path 'versions.yml'            , emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    # unicoal code ${task.ext.code}
    export MPLBACKEND=Agg
    mkdir -p runs
    unicoal curves --jobs ${jobs} --runs runs --out-dir curves ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        matplotlib: \$(unicoal-python -c "from importlib.metadata import version; print(version('matplotlib'))")
    END_VERSIONS
    """

    stub:
    """
    # unicoal code ${task.ext.code}
    mkdir -p curves && echo '{"metric": "val_psnr_head", "notes": [], "tables": {}}' > curves/curves.json
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
