process SYNTHESIZE {
    tag "${meta.id}"
    label 'process_gpu_infer'

    input:
    // meta: one synthesize job of the plan (method, source, target, scale, subject, ...);
    // checkpoint: the trained model, or [] for methods that need no training (interpolation)
    tuple val(meta), path(checkpoint, stageAs: 'model/*'), path(source, stageAs: 'in/*'), path(like, stageAs: 'like/*')

    output:
    tuple val(meta), path("${meta.id}.nii.gz"), emit: volume
    path 'versions.yml'                        , emit: versions

    script:
    def args = task.ext.args ?: ''
    def device = task.ext.device ?: 'cpu'
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    unicoal synthesize ${checkpoint ? "--checkpoint ${checkpoint}" : "--method ${meta.method}"} --input ${source} --from ${meta.source} --to ${meta.target} --like ${like} --out ${meta.id}.nii.gz --device ${device} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        torch: \$(python3 -c "import torch; print(torch.__version__)")
    END_VERSIONS
    """

    stub:
    """
    touch ${meta.id}.nii.gz
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
