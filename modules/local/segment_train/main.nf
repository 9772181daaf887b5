process SEGMENT_TRAIN {
    tag "${meta.id}"
    label 'process_gpu'

    input:
    // meta.id: the modality nnU-Net learns to segment (real images of the train split + labels)
    tuple val(meta), val(sheet), path(volumes, stageAs: 'data/*'), path(labels, stageAs: 'labels/*')

    output:
    tuple val(meta), path("${meta.id}_nnunet"), emit: model   // nnUNet_raw, _preprocessed, _results
    path 'versions.yml'                       , emit: versions

    script:
    def args = task.ext.args ?: ''
    def export_args = task.ext.export_args ?: ''
    def device = task.ext.device ?: 'cpu'
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    printf '%b' '${sheet.replace('\n', '\\n')}' > samplesheet.csv
    unicoal segment export --samplesheet samplesheet.csv --modality ${meta.id} --out-dir ${meta.id}_nnunet ${export_args}
    unicoal segment train --nnunet-root ${meta.id}_nnunet --device ${device} --threads ${task.cpus} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        nnunetv2: \$(unicoal-python -c "from importlib.metadata import version; print(version('nnunetv2'))")
        torch: \$(unicoal-python -c "import torch; print(torch.__version__)")
    END_VERSIONS
    """

    stub:
    """
    mkdir -p ${meta.id}_nnunet/nnUNet_results && touch ${meta.id}_nnunet/nnUNet_results/model.stub
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
