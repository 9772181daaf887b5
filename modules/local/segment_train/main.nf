process SEGMENT_TRAIN {
    tag "${meta.id}"
    label 'process_gpu'

    input:
    // meta.id: the modality nnU-Net learns to segment (real images of the train split + labels,
    // each label staged under its subject's name)
    tuple val(meta), val(sheet), path(volumes, stageAs: 'data/*'), path(labels, stageAs: 'labels/*')

    output:
    tuple val(meta), path("${meta.id}_nnunet"), emit: model   // nnUNet_results (+ the raw dataset.json)
    path 'versions.yml'                       , emit: versions

    script:
    def args = task.ext.args ?: ''
    def export_args = task.ext.export_args ?: ''
    def device = task.ext.device ?: 'cpu'
    // nnU-Net trains in $UNICOAL_CHECKPOINT_DIR/nnunet/<modality>-<key> (key: the sheet, the
    // options, the code and the data's contents), outside the task folder: a retry after a time limit or
    // pre-emption continues from nnU-Net's checkpoint_latest.pth (`unicoal segment train` resumes
    // by itself); the finished model is copied out
    """
    # unicoal code ${task.ext.code}
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    printf '%b' '${sheet.replace('\n', '\\n')}' > samplesheet.csv
    key=\$( { cat samplesheet.csv; echo '${export_args} ${args} ${task.ext.code}'; find -L data labels -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum; } | sha256sum | cut -c1-16)
    runs="\${UNICOAL_CHECKPOINT_DIR:-\$(dirname "\$(dirname "\$PWD")")/checkpoints}"
    root="\$runs/nnunet/${meta.id}-\$key"
    if [ ! -e "\$root/.exported" ]; then
        rm -rf "\$root"
        unicoal segment export --samplesheet samplesheet.csv --modality ${meta.id} --out-dir "\$root" ${export_args}
        touch "\$root/.exported"
    fi
    unicoal segment train --nnunet-root "\$root" --device ${device} --threads ${task.cpus} ${args}
    rm -rf ${meta.id}_nnunet ${meta.id}_nnunet.tmp
    mkdir -p ${meta.id}_nnunet.tmp
    cp -r "\$root/nnUNet_results" ${meta.id}_nnunet.tmp/
    mkdir -p ${meta.id}_nnunet.tmp/nnUNet_raw ${meta.id}_nnunet.tmp/nnUNet_preprocessed
    (cd "\$root" && find nnUNet_raw nnUNet_preprocessed -maxdepth 2 -name '*.json' -print0 | xargs -0r cp --parents -t "\$OLDPWD/${meta.id}_nnunet.tmp")
    mv ${meta.id}_nnunet.tmp ${meta.id}_nnunet

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        nnunetv2: \$(unicoal-python -c "from importlib.metadata import version; print(version('nnunetv2'))")
        torch: \$(unicoal-python -c "import torch; print(torch.__version__)")
    END_VERSIONS
    """

    stub:
    """
    # unicoal code ${task.ext.code}
    mkdir -p ${meta.id}_nnunet/nnUNet_results && touch ${meta.id}_nnunet/nnUNet_results/model.stub
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
