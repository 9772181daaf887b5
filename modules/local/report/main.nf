process REPORT {
    tag "${meta.id}"
    label 'process_single'
    cache 'deep'   // software_versions.yml is re-collected on every run: hash it by content

    input:
    tuple val(meta), path(tables), path(figures)
    path samplesheet
    path preprocessing, stageAs: 'preprocessing/*'   // JSON sidecars of the preprocessing steps
    path versions
    path configs, stageAs: 'configs'                 // the plan's train configs (provenance)
    path curves, stageAs: 'curves'                   // learning curves on the validation split (unicoal curves)
    val run_parameters                                  // the resolved pipeline parameters, one line of JSON

    output:
    path 'report.html' , emit: report
    path 'versions.yml', emit: versions

    script:
    def args = task.ext.args ?: ''
    def sidecars = (preprocessing instanceof List ? preprocessing : [preprocessing]).collect { f -> "--preprocessing ${f}" }.join(' ')
    """
    # unicoal code ${task.ext.code}
    export MPLBACKEND=Agg
    cat > parameters.json <<'UNICOAL_PARAMETERS_JSON'
    ${run_parameters}
    UNICOAL_PARAMETERS_JSON
    unicoal report --tables ${tables} --figures ${figures} --cohort ${samplesheet} ${sidecars} --versions ${versions} \\
        --params parameters.json --configs configs --curves ${curves} --out report.html ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
    END_VERSIONS
    """

    stub:
    """
    # unicoal code ${task.ext.code}
    echo '<html><body>stub report</body></html>' > report.html
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
