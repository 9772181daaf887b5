process SEGMENT_PREDICT {
    tag "${meta.id}"
    label 'process_gpu_infer'

    input:
    // a synthesized volume, the nnU-Net of its target modality, and the subject's brain mask or []
    tuple val(meta), path(model), path(image, stageAs: 'in/*'), path(mask, stageAs: 'mask/*')

    output:
    tuple val(meta), path("seg/${meta.id}_seg.nii.gz"), emit: seg
    path 'versions.yml'                                , emit: versions

    script:
    def args = task.ext.args ?: ''
    def device = task.ext.device ?: 'cpu'
    def mask_arg = mask ? "--mask ${mask}" : ''
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    unicoal segment predict --nnunet-root ${model} --input ${image} ${mask_arg} --name ${meta.id} --out-dir seg --device ${device} --threads ${task.cpus} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        nnunetv2: \$(unicoal-python -c "from importlib.metadata import version; print(version('nnunetv2'))")
    END_VERSIONS
    """

    stub:
    """
    mkdir -p seg && touch seg/${meta.id}_seg.nii.gz
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
