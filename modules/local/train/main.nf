process TRAIN {
    tag "${meta.id}"
    label 'process_gpu'

    input:
    // meta: what names and sizes the model (id, method, method_id, max_steps), nothing else, so
    // that running other tables or parameters keeps a finished training cached
    // config: the train config YAML as text (by content: never a path of PLAN's work directory)
    // sheet: samplesheet text naming the staged data/ and labels/ files (train and val subjects)
    tuple val(meta), val(config), val(sheet), path(volumes, stageAs: 'data/*'), path(labels, stageAs: 'labels/*')
    // folder of the training runs (--checkpoint_dir, default <work dir>/checkpoints)
    val runs

    output:
    tuple val(meta), path("${meta.id}/model.pt"), emit: checkpoint   // the exported (EMA) model
    tuple val(meta), path("${meta.id}")         , emit: run
    path 'versions.yml'                         , emit: versions

    script:
    def args = task.ext.args ?: ''
    def device = task.ext.device ?: 'cpu'
    def nproc = task.ext.nproc ?: 1
    // The run lives in RUNS/<id>-<key>, key = hash of the config, the samplesheet and the staged
    // data (names, sizes, times): a task killed by a time limit (exit 140), pre-emption or a crash
    // continues from checkpoints/last.pt when retried or re-run, and a changed config or changed
    // data never resumes an unrelated run. The finished run is copied into the task's folder.
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus} UNICOAL_NPROC=${nproc}
    printf '%b' '${config.replace('\\', '\\\\').replace("'", "'\\''").replace('\n', '\\n')}' > config.yaml
    printf '%b' '${sheet.replace('\n', '\\n')}' > samplesheet.csv
    shopt -s nullglob
    staged=(data/* labels/*)
    key=\$( { cat config.yaml samplesheet.csv; stat -L -c '%n %s %Y' "\${staged[@]}"; echo "${meta.max_steps ?: ''}"; } | sha256sum | cut -c1-16)
    run_dir="${runs}/${meta.id}-\$key"
    mkdir -p "\$run_dir"
    resume=''
    [ -e "\$run_dir/checkpoints/last.pt" ] && resume='--resume'
    unicoal train --config config.yaml --samplesheet samplesheet.csv --out "\$run_dir" --device ${device} ${meta.max_steps ? "--max-steps ${meta.max_steps}" : ''} \$resume ${args}
    rm -rf ${meta.id}.tmp && cp -r "\$run_dir" ${meta.id}.tmp && mv ${meta.id}.tmp ${meta.id}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        torch: \$(unicoal-python -c "import torch; print(torch.__version__)")
        cuda: \$(unicoal-python -c "import torch; print(torch.version.cuda or 'none')")
    END_VERSIONS
    """

    stub:
    def nproc = task.ext.nproc ?: 1
    """
    export UNICOAL_NPROC=${nproc}   # as the script: the processes torchrun would start
    mkdir -p ${meta.id}/checkpoints
    touch ${meta.id}/checkpoints/last.pt ${meta.id}/model.pt
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
