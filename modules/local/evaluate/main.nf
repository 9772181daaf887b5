process EVALUATE {
    tag "${meta.id}"
    label 'process_single'

    input:
    // meta: the synthesis batch; jobs: its synthesize jobs (each names its prediction
    // <id>.nii.gz, ground truth `like` and brain mask by index into masks, -1 for none)
    tuple val(meta), val(jobs), path(preds, stageAs: 'pred/*'), path(targets, stageAs: 'target/*'), path(masks, stageAs: 'mask*/*')

    output:
    tuple val(meta), path('rows/*.csv'), emit: rows
    path 'versions.yml'                , emit: versions

    script:
    def args = task.ext.args ?: ''
    def mask_files = masks instanceof List ? masks : [masks]
    def quote = { v -> v.toString().contains(',') || v.toString().contains('"') ? '"' + v.toString().replace('"', '""') + '"' : v.toString() }
    // one row per volume: `unicoal evaluate --jobs` evaluates them all in one Python
    def lines = ['pred,target,out,mask,method,task,dataset,subject,source,target_modality,scale,table'] + jobs.collect { job ->
        ["pred/${job.id}.nii.gz", "target/${job.like}", "rows/${job.id}.csv", job.mask_index >= 0 ? mask_files[job.mask_index] : '',
         job.method_id, job.task ?: '', job.dataset ?: '', job.subject, job.source, job.target, job.scale, job.table].collect(quote).join(',')
    }
    """
    # unicoal code ${task.ext.code}
    printf '%b' '${(lines.join('\n') + '\n').replace('\\', '\\\\').replace("'", "'\\''").replace('\n', '\\n')}' > jobs.csv
    mkdir -p rows
    unicoal evaluate --jobs jobs.csv ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        scikit-image: \$(unicoal-python -c "from importlib.metadata import version; print(version('scikit-image'))")
    END_VERSIONS
    """

    stub:
    def lines = jobs.collect { job -> "${job.id}|${job.table},${job.dataset},${job.task},${job.method_id},${job.subject},${job.source},${job.target},${job.scale},PSNR,30.0,published" }
    """
    # unicoal code ${task.ext.code}
    mkdir -p rows
    while IFS='|' read -r id row; do
        printf 'table,dataset,task,method,subject,source,target,scale,metric,value,convention\\n%s\\n' "\$row" > "rows/\$id.csv"
    done <<'END_ROWS'
${lines.join('\n')}
END_ROWS
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
