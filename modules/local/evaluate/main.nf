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
    // one tab-separated line per job ('-' for an empty field): read by the loop below
    def lines = jobs.collect { job ->
        [job.id, "target/${job.like}", job.mask_index >= 0 ? mask_files[job.mask_index] : '-', job.method_id, job.task ?: '-',
         job.dataset ?: '-', job.subject, job.source, job.target, job.scale, job.table].join('\t')
    }
    """
    printf '%b' '${(lines.join('\n') + '\n').replace('\\', '\\\\').replace("'", "'\\''").replace('\n', '\\n')}' > jobs.tsv
    mkdir -p rows
    while IFS=\$'\\t' read -r id target mask method task dataset subject source tmod scale table; do
        [ "\$mask" = - ] && mask='' ; [ "\$task" = - ] && task='' ; [ "\$dataset" = - ] && dataset=''
        unicoal evaluate --pred "pred/\$id.nii.gz" --target "\$target" \${mask:+--mask "\$mask"} --out "rows/\$id.csv" \\
            --method "\$method" --task "\$task" --dataset "\$dataset" --subject "\$subject" \\
            --source "\$source" --target-modality "\$tmod" --scale "\$scale" --table "\$table" ${args}
    done < jobs.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        scikit-image: \$(unicoal-python -c "from importlib.metadata import version; print(version('scikit-image'))")
    END_VERSIONS
    """

    stub:
    def lines = jobs.collect { job -> "${job.id}|${job.table},${job.dataset},${job.task},${job.method_id},${job.subject},${job.source},${job.target},${job.scale},PSNR,30.0,published" }
    """
    mkdir -p rows
    while IFS='|' read -r id row; do
        printf 'table,dataset,task,method,subject,source,target,scale,metric,value,convention\\n%s\\n' "\$row" > "rows/\$id.csv"
    done <<'END_ROWS'
${lines.join('\n')}
END_ROWS
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
