process SYNTHESIZE {
    tag "${meta.id}"
    label 'process_gpu_infer'

    input:
    // meta: the batch (id, train_id, method, method_id); jobs: its synthesize jobs of the plan,
    // each naming its staged source (in/) and reference grid (like/); checkpoint: the trained
    // model, or [] for methods that need no training (interpolation). One task per model: the
    // model is loaded once for all its test subjects, sources, targets and scales.
    tuple val(meta), val(jobs), path(checkpoint, stageAs: 'model/*'), path(sources, stageAs: 'in/*'), path(likes, stageAs: 'like/*')

    output:
    // out/<table>/<method id>/<job id>.nii.gz (+ .json sidecar)
    tuple val(meta), val(jobs), path('out/*/*/*'), emit: volumes
    path 'versions.yml'                          , emit: versions

    script:
    def args = task.ext.args ?: ''
    def device = task.ext.device ?: 'cpu'
    def quote = { v -> v.toString().contains(',') || v.toString().contains('"') ? '"' + v.toString().replace('"', '""') + '"' : v.toString() }
    def lines = ['id,input,from,to,like,out'] + jobs.collect { job ->
        [job.id, "in/${job.input}", job.source, job.target, "like/${job.like}", "out/${job.table}/${job.method_id}/${job.id}.nii.gz"].collect(quote).join(',')
    }
    """
    # unicoal code ${task.ext.code}
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    printf '%b' '${(lines.join('\n') + '\n').replace('\\', '\\\\').replace("'", "'\\''").replace('\n', '\\n')}' > jobs.csv
    unicoal synthesize --jobs jobs.csv ${checkpoint ? "--checkpoint ${checkpoint}" : "--method ${meta.method}"} --device ${device} --no-progress ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        torch: \$(unicoal-python -c "import torch; print(torch.__version__)")
    END_VERSIONS
    """

    stub:
    def outs = jobs.collect { job -> "out/${job.table}/${job.method_id}/${job.id}.nii.gz" }
    """
    # unicoal code ${task.ext.code}
    for f in ${outs.collect { o -> "'${o}'" }.join(' ')}; do mkdir -p "\$(dirname "\$f")" && touch "\$f"; done
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
