process SEGMENT_REAL {
    tag "${meta.id}"
    label 'process_gpu_infer'

    input:
    // meta.id: the modality, meta.dataset: the dataset column of the rows; the nnU-Net trained on
    // that modality; the real (preprocessed) test images with their label maps (named after
    // their subjects), named by the samplesheet text
    tuple val(meta), path(model), val(sheet), path(volumes, stageAs: 'data/*'), path(labels, stageAs: 'labels/*')

    output:
    // method Real, the DSC upper bound: one file per modality and dataset (T1 in BraTS and CSDH)
    tuple val(meta), path("${meta.dataset ?: 'cohort'}_${meta.id}_real_dice.csv"), emit: row
    path 'versions.yml'                                , emit: versions

    script:
    def args = task.ext.args ?: ''
    def device = task.ext.device ?: 'cpu'
    def out = "${meta.dataset ?: 'cohort'}_${meta.id}_real_dice.csv"
    """
    # unicoal code ${task.ext.code}
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    printf '%b' '${sheet.replace('\n', '\\n')}' > samplesheet.csv
    unicoal segment real --nnunet-root ${model} --samplesheet samplesheet.csv --modality ${meta.id} --out-dir seg \\
        --out ${out} --dataset '${meta.dataset}' --device ${device} --threads ${task.cpus} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        nnunetv2: \$(unicoal-python -c "from importlib.metadata import version; print(version('nnunetv2'))")
    END_VERSIONS
    """

    stub:
    def out = "${meta.dataset ?: 'cohort'}_${meta.id}_real_dice.csv"
    """
    # unicoal code ${task.ext.code}
    echo 'table,dataset,task,method,subject,source,target,scale,metric,value,convention' > ${out}
    echo ',${meta.dataset},,Real,stub,${meta.id},${meta.id},1,DSC,0.9,brats-empty-1' >> ${out}
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
