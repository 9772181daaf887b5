process PLAN {
    tag "${experiment}"
    label 'process_single'

    input:
    val experiment            // table1|table2|table3|table4|table6|all
    tuple val(meta), path(samplesheet)

    output:
    path 'plan/jobs.csv'       , emit: jobs         // one row per train / synthesize job
    path 'plan/samplesheet.csv', emit: samplesheet  // validated: absolute paths, splits filled in
    path 'plan/configs'        , emit: configs      // one train config per train job
    path 'versions.yml'    , emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    # unicoal code ${task.ext.code}
    unicoal plan --experiment ${experiment} --samplesheet ${samplesheet} --out plan/jobs.csv --config-dir plan/configs ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
    END_VERSIONS
    """

    stub:
    // the plan is cheap and opens no volume: run it for real (over every method of the
    // experiment, registered or not) so that -stub-run wires the full-scale graph
    def args = task.ext.args ?: ''
    """
    # unicoal code ${task.ext.code}
    unicoal plan --experiment ${experiment} --samplesheet ${samplesheet} --out plan/jobs.csv --config-dir plan/configs --ignore-registry ${args}
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
