process REGISTER {
    tag "${meta.id}"
    label 'process_medium'

    input:
    // modalities[i] names volumes[i]; label: a lesion map on the reference's grid, or []
    tuple val(meta), val(modalities), path(volumes, stageAs: 'raw??/*'), path(label, stageAs: 'rawlabel/*')

    output:
    // <MODALITY>.nii.gz for every modality (+ <subject>_label.nii.gz): the subject's bundle
    tuple val(meta), path('reg/*.nii.gz', arity: '1..*'), emit: bundle
    tuple val(meta), path('reg/*.{mat,json}')           , emit: transforms, optional: true
    path 'versions.yml'                                  , emit: versions

    script:
    def args = task.ext.args ?: ''
    def ref = modalities.contains(task.ext.reference ?: 'T1') ? (task.ext.reference ?: 'T1') : modalities[0]
    def vols = volumes instanceof List ? volumes : [volumes]
    def links = [modalities, vols].transpose().collect { pair -> "ln -sf \"\$(readlink -f ${pair[1]})\" src/${pair[0]}.nii.gz" }.join('\n    ')
    def moving = modalities.findAll { m -> m != ref }.collect { m -> "--moving src/${m}.nii.gz" }.join(' ')
    def lab = label ? "--label src/${meta.id}_label.nii.gz" : ''
    """
    # name every volume after its modality: the outputs keep these names
    mkdir -p src
    ${links}
    ${label ? "ln -sf \"\$(readlink -f ${label})\" src/${meta.id}_label.nii.gz" : ''}

    unicoal register --reference src/${ref}.nii.gz ${moving} ${lab} --out-dir reg --threads ${task.cpus} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        antspyx: \$(unicoal-python -c "from importlib.metadata import version; print(version('antspyx'))")
    END_VERSIONS
    """

    stub:
    """
    mkdir -p reg
    for m in ${modalities.join(' ')}; do touch reg/\$m.nii.gz reg/\${m}_to_ref.mat; done
    ${label ? "touch reg/${meta.id}_label.nii.gz" : ''}
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
