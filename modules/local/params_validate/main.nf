process PARAMS_VALIDATE {
    tag "${schema.name}"
    label 'process_single'

    input:
    val params_json    // the run's params as JSON text
    path schema

    output:
    path 'params.valid.json', emit: params
    path 'versions.yml'     , emit: versions

    script:
    """
    printf '%s\\n' '${params_json.replace("'", "'\\''")}' > params.json
    unicoal params validate params.json --schema ${schema} --out params.valid.json

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
    END_VERSIONS
    """

    stub:
    """
    printf '%s\\n' '${params_json.replace("'", "'\\''")}' > params.valid.json
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
