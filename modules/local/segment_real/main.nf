process SEGMENT_REAL {
    tag "${meta.id}"
    label 'process_gpu_infer'

    input:
    // meta.id: the modality; the nnU-Net trained on it; the real (preprocessed) test images of
    // that modality with their label maps, named by the samplesheet text
    tuple val(meta), path(model), val(sheet), path(volumes, stageAs: 'data/*'), path(labels, stageAs: 'labels/*')

    output:
    tuple val(meta), path("${meta.id}_real_dice.csv"), emit: row    // method Real: the DSC upper bound
    path 'versions.yml'                                , emit: versions

    script:
    def args = task.ext.args ?: ''
    def device = task.ext.device ?: 'cpu'
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    printf '%b' '${sheet.replace('\n', '\\n')}' > samplesheet.csv
    unicoal segment real --nnunet-root ${model} --samplesheet samplesheet.csv --modality ${meta.id} --out-dir seg \\
        --out ${meta.id}_real_dice.csv --dataset '${meta.dataset}' --device ${device} --threads ${task.cpus} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        nnunetv2: \$(unicoal-python -c "from importlib.metadata import version; print(version('nnunetv2'))")
    END_VERSIONS
    """

    stub:
    """
    echo 'table,dataset,task,method,subject,source,target,scale,metric,value,convention' > ${meta.id}_real_dice.csv
    echo ',${meta.dataset},,Real,stub,${meta.id},${meta.id},1,DSC,0.9,brats-empty-1' >> ${meta.id}_real_dice.csv
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
