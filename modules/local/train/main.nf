process TRAIN {
    tag "${meta.id}"
    label 'process_gpu'

    input:
    // meta: what names and sizes the model (id, method, method_id, max_steps), nothing else, so
    // that running other tables or parameters keeps a finished training cached
    // config: the train config YAML as text (by content: never a path of PLAN's work directory)
    // sheet: samplesheet text naming the staged data/ files: the train and val volumes of the
    // modalities this model reads or writes, nothing else (no labels: training reads none)
    tuple val(meta), val(config), val(sheet), path(volumes, stageAs: 'data/*')

    output:
    tuple val(meta), path("${meta.id}/model.pt"), emit: checkpoint   // the exported (EMA) model
    tuple val(meta), path("${meta.id}")         , emit: run          // model.pt, config.json, log.csv, val.csv (model selection)
    path 'versions.yml'                         , emit: versions

    script:
    def args = task.ext.args ?: ''
    def device = task.ext.device ?: 'cpu'
    // The run lives in $UNICOAL_CHECKPOINT_DIR/<id>-<key> (--checkpoint_dir, default
    // <work dir>/checkpoints; an environment variable, so never part of the cache key), key = hash
    // of the config, the samplesheet, the step count, the method's code and the staged volumes'
    // contents: a task
    // stopped by the time limit (exit 140), pre-emption or a crash continues from
    // checkpoints/last.pt when retried or re-run; changed data or config never resumes an
    // unrelated run. On --device cuda one process per GPU the job got (torchrun when > 1), with
    // the task's CPUs shared among them. The finished model, config and logs are copied out.
    """
    # unicoal code ${task.ext.code}
    printf '%b' '${config.replace('\\', '\\\\').replace("'", "'\\''").replace('\n', '\\n')}' > config.yaml
    printf '%b' '${sheet.replace('\n', '\\n')}' > samplesheet.csv
    key=\$( { cat config.yaml samplesheet.csv; echo "${meta.max_steps ?: ''} ${task.ext.code}"; find -L data -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum; } | sha256sum | cut -c1-16)
    runs="\${UNICOAL_CHECKPOINT_DIR:-\$(dirname "\$(dirname "\$PWD")")/checkpoints}"
    run_dir="\$runs/${meta.id}-\$key"
    mkdir -p "\$run_dir"
    nproc=1
    if [ "${device}" = cuda ]; then
        gpus="\${CUDA_VISIBLE_DEVICES:-\$(nvidia-smi -L 2>/dev/null | awk '{printf "%s%d", (NR > 1 ? "," : ""), NR - 1}')}"
        nproc=\$(echo "\$gpus" | tr ',' '\\n' | grep -c . || true)
        [ "\$nproc" -ge 1 ] || nproc=1
    fi
    threads=\$(( ${task.cpus} / nproc )); [ "\$threads" -ge 1 ] || threads=1
    export OMP_NUM_THREADS=\$threads MKL_NUM_THREADS=\$threads UNICOAL_NPROC=\$nproc
    resume=''
    [ -e "\$run_dir/checkpoints/last.pt" ] && resume='--resume'

    # the time-limit signal (forwarded by the job's shell, conf/modules.config) or TERM: the
    # trainer (each torchrun rank) saves checkpoints/last.pt and exits; 140 tells Nextflow to retry
    stopped=0
    stop_training() {
        stopped=1
        if [ "\$nproc" -gt 1 ]; then pkill -USR2 -P "\$trainer" || true; else kill -USR2 "\$trainer" 2>/dev/null || true; fi
    }
    unicoal train --config config.yaml --samplesheet samplesheet.csv --out "\$run_dir" --device ${device} ${meta.max_steps ? "--max-steps ${meta.max_steps}" : ''} \$resume ${args} &
    trainer=\$!
    trap stop_training USR2 TERM
    rc=0
    wait "\$trainer" || rc=\$?
    while kill -0 "\$trainer" 2>/dev/null; do rc=0; wait "\$trainer" || rc=\$?; done
    trap - USR2 TERM
    if [ "\$stopped" = 1 ]; then
        echo "unicoal: training stopped by a signal at the time limit: checkpoints/last.pt in \$run_dir, the retry resumes" >&2
        exit 140
    fi
    [ "\$rc" = 0 ] || exit "\$rc"

    rm -rf ${meta.id} ${meta.id}.tmp && mkdir ${meta.id}.tmp
    for f in model.pt config.json log.csv val.csv; do [ -e "\$run_dir/\$f" ] && cp "\$run_dir/\$f" ${meta.id}.tmp/; done
    mv ${meta.id}.tmp ${meta.id}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        torch: \$(unicoal-python -c "import torch; print(torch.__version__)")
        cuda: \$(unicoal-python -c "import torch; print(torch.version.cuda or 'none')")
    END_VERSIONS
    """

    stub:
    """
    # unicoal code ${task.ext.code}
    mkdir -p ${meta.id}
    touch ${meta.id}/model.pt ${meta.id}/config.json
    printf 'step,kimg,val_psnr_head,ssim_head,best\\n' > ${meta.id}/val.csv   # validate.py's columns, no rows (no validation ran)
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
