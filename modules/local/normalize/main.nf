process NORMALIZE {
    tag "${meta.id}"
    label 'process_single'

    input:
    // all modalities of one subject (modalities[i] names volumes[i]) and its brain mask or []
    tuple val(meta), val(modalities), path(volumes, stageAs: 'in??/*'), path(mask, stageAs: 'mask/*')

    output:
    // norm/<subject>_<MODALITY>.nii.gz and .json (normalisation parameters), every modality
    tuple val(meta), path('norm/*.nii.gz', arity: '1..*'), path('norm/*.json', arity: '1..*'), emit: volumes
    path 'versions.yml'                                                                      , emit: versions

    script:
    def args = task.ext.args ?: ''
    def mask_arg = mask ? "--mask ${mask}" : ''
    def vols = volumes instanceof List ? volumes : [volumes]
    def pairs = [modalities, vols].transpose().collect { pair -> "${pair[0]} ${pair[1]}" }.join('\\n')
    """
    mkdir -p norm
    printf '%b\\n' '${pairs}' > volumes.txt
    while read -r mod vol; do
        unicoal normalize "\$vol" "norm/${meta.subject}_\$mod.nii.gz" ${mask_arg} ${args}
        [ -e "norm/${meta.subject}_\$mod.json" ] || echo '{}' > "norm/${meta.subject}_\$mod.json"
    done < volumes.txt

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p norm
    for m in ${modalities.join(' ')}; do touch norm/${meta.subject}_\$m.nii.gz norm/${meta.subject}_\$m.json; done
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
