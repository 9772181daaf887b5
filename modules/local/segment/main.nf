process SEGMENT {
    tag "${meta.id}"
    label 'process_gpu_infer'

    input:
    // one synthesis batch's volumes of one target modality (meta.target) with DSC, the nnU-Net
    // of that modality, and per job (jobs: maps naming the staged files) the brain mask and the
    // subject's label map: nnU-Net is loaded once for the batch, Dice is written per table cell
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
    // one Dice call per table cell (method, task, source, target, scale, table), over its subjects;
    // its rows file is named after the cell: the job id without the subject
    def cell_name = { job -> job.id.replace("-${job.subject}-", '-') }
    def cells = jobs.groupBy { job -> [job.table, job.method_id, job.task, job.dataset, job.source, job.target, job.scale] }
    def dice = cells.collect { cell, group ->
        def pairs = group.collect { job -> "--pred 'seg/${job.id}_seg.nii.gz' --truth 'label/${job.label}' --subject '${job.subject}'" }.join(' ')
        "unicoal segment dice ${pairs} --out 'rows/${cell_name(group[0])}_dice.csv' --method '${cell[1]}' --task '${cell[2]}' --dataset '${cell[3]}' " +
            "--source '${cell[4]}' --target '${cell[5]}' --scale ${cell[6]} --table '${cell[0]}' ${dice_args}"
    }.join('\n')
    """
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
    def cell_name = { job -> job.id.replace("-${job.subject}-", '-') }
    def cells = jobs.groupBy { job -> [job.table, job.method_id, job.task, job.dataset, job.source, job.target, job.scale] }
    def rows = cells.collect { cell, group ->
        def lines = group.collect { job -> "${cell[0]},${cell[3]},${cell[2]},${cell[1]},${job.subject},${cell[4]},${cell[5]},${cell[6]},DSC,0.8,brats-empty-1" }
        "printf '%s\\n' 'table,dataset,task,method,subject,source,target,scale,metric,value,convention' ${lines.collect { l -> "'${l}'" }.join(' ')} > 'rows/${cell_name(group[0])}_dice.csv'"
    }.join('\n')
    """
    mkdir -p seg rows
    ${jobs.collect { job -> "touch 'seg/${job.id}_seg.nii.gz'" }.join('\n')}
    ${rows}
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
