process TRAIN {
    tag "${meta.id}"
    label 'process_gpu'

    input:
    // meta: one train job of the plan (id, method, table, sources, targets, scales, ...)
    // sheet: samplesheet text naming the staged data/ and labels/ files (train and val subjects)
    tuple val(meta), path(config), val(sheet), path(volumes, stageAs: 'data/*'), path(labels, stageAs: 'labels/*')

    output:
    tuple val(meta), path("${meta.id}/model.pt"), emit: checkpoint   // the exported (EMA) model
    tuple val(meta), path("${meta.id}")                     , emit: run
    path 'versions.yml'                                      , emit: versions

    script:
    def args = task.ext.args ?: ''
    def device = task.ext.device ?: 'cpu'
    // With params.checkpoint_dir the run directory lives outside the work dir, so a task that
    // was killed (pre-emption, time limit) continues from its last checkpoint when re-run.
    def keep = task.ext.checkpoint_dir ? "${task.ext.checkpoint_dir}/${meta.id}" : ''
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    printf '%b' '${sheet.replace('\n', '\\n')}' > samplesheet.csv
    resume=''
    if [ -n "${keep}" ]; then
        mkdir -p "${keep}"
        ln -sfn "${keep}" ${meta.id}
        [ -e ${meta.id}/checkpoints/last.pt ] && resume='--resume'
    fi
    unicoal train --config ${config} --samplesheet samplesheet.csv --out ${meta.id} --device ${device} ${meta.max_steps ? "--max-steps ${meta.max_steps}" : ''} \$resume ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        torch: \$(python3 -c "import torch; print(torch.__version__)")
        cuda: \$(python3 -c "import torch; print(torch.version.cuda or 'none')")
    END_VERSIONS
    """

    stub:
    """
    mkdir -p ${meta.id}/checkpoints
    touch ${meta.id}/checkpoints/last.pt ${meta.id}/model.pt
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
