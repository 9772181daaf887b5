process SEGMENT {
    tag "${meta.id}"
    label 'process_gpu_infer'

    input:
    // one synthesis batch's volumes of one target modality (meta.target) with DSC, the nnU-Net
    // of that modality, and per job (jobs: maps naming the staged files) the brain mask and the
    // subject's label map (both named after the subject, <subject>_brainmask.nii.gz and
    // <subject>_label.nii.gz, so many subjects stage side by side): nnU-Net is loaded once for
    // the batch, Dice is written per table cell
    tuple val(meta), val(jobs), path(model), path(preds, stageAs: 'in/*'), path(masks, stageAs: 'mask/*'), path(labels, stageAs: 'label/*')

    output:
    tuple val(meta), path('seg/*_seg.nii.gz'), emit: seg
    tuple val(meta), path('rows/*_dice.csv') , emit: rows
    path 'versions.yml'                      , emit: versions

    script:
    def args = task.ext.args ?: ''
    def dice_args = task.ext.dice_args ?: ''
    def device = task.ext.device ?: 'cpu'
    def with_masks = jobs.every { job -> job.mask }   // one mask per input, or none (no skull stripping)
    def inputs = jobs.collect { job -> "--input 'in/${job.pred}' --name '${job.id}'" + (with_masks ? " --mask 'mask/${job.mask}'" : '') }.join(' ')
    // one Dice call per table cell (job.cell: method, task, source, target, scale, table), over its
    // subjects, into rows/<cell>_dice.csv
    def dice = jobs.groupBy { job -> job.cell }.collect { cell, group ->
        def c = group[0]
        def pairs = group.collect { job -> "--pred 'seg/${job.id}_seg.nii.gz' --truth 'label/${job.label}' --subject '${job.subject}'" }.join(' ')
        "unicoal segment dice ${pairs} --out 'rows/${cell}_dice.csv' --method '${c.method_id}' --task '${c.task}' --dataset '${c.dataset}' " +
            "--source '${c.source}' --target '${c.target}' --scale ${c.scale} --table '${c.table}' ${dice_args}"
    }.join('\n')
    """
    # unicoal code ${task.ext.code}
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    unicoal segment predict --nnunet-root ${model} ${inputs} --out-dir seg --device ${device} --threads ${task.cpus} ${args}
    mkdir -p rows
    ${dice}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        nnunetv2: \$(unicoal-python -c "from importlib.metadata import version; print(version('nnunetv2'))")
    END_VERSIONS
    """

    stub:
    def rows = jobs.groupBy { job -> job.cell }.collect { cell, group ->
        def lines = group.collect { j -> "${j.table},${j.dataset},${j.task},${j.method_id},${j.subject},${j.source},${j.target},${j.scale},DSC,0.8,brats-empty-1" }
        "printf '%s\\n' 'table,dataset,task,method,subject,source,target,scale,metric,value,convention' ${lines.collect { l -> "'${l}'" }.join(' ')} > 'rows/${cell}_dice.csv'"
    }.join('\n')
    """
    # unicoal code ${task.ext.code}
    mkdir -p seg rows
    ${jobs.collect { job -> "touch 'seg/${job.id}_seg.nii.gz'" }.join('\n')}
    ${rows}
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
