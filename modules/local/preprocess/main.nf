process PREPROCESS {
    tag "${meta.id}"
    label 'process_medium'

    input:
    // one subject: modalities[i] names volumes[i]; label: its lesion map on the reference grid, or []
    tuple val(meta), val(modalities), path(volumes, stageAs: 'raw??/*'), path(label, stageAs: 'rawlabel/*')

    output:
    // out/norm/<subject>_<MODALITY>.nii.gz and .json (normalisation parameters), every modality
    tuple val(meta), path('out/norm/*.nii.gz', arity: '1..*'), path('out/norm/*.json', arity: '1..*'), emit: volumes
    // out/<subject>_brainmask.nii.gz (skull strip) and out/<subject>_label.nii.gz (a label map):
    // named after the subject, so that later steps stage many subjects' side by side
    tuple val(meta), path('out/*.nii.gz', arity: '0..*')                                           , emit: extras
    tuple val(meta), path('out/reg/*.{mat,json}')                                                  , emit: transforms, optional: true
    path 'versions.yml'                                                                             , emit: versions

    script:
    def args = task.ext.args ?: ''
    def vols = volumes instanceof List ? volumes : [volumes]
    // the subject's rows, naming the staged files (register, skull strip and normalise in one job)
    def rows = [modalities, vols].transpose().collect { pair -> "${meta.subject},${pair[0]},${pair[1]},${label ?: ''},${meta.split}" }
    """
    # unicoal code ${task.ext.code}
    printf '%b' '${(['subject,modality,path,label,split'] + rows).join('\\n')}\\n' > samplesheet.csv
    unicoal preprocess --samplesheet samplesheet.csv --subject '${meta.subject}' --out-dir out --threads ${task.cpus} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        antspyx: \$(unicoal-python -c "from importlib.metadata import version; print(version('antspyx'))")
        deepbet: \$(unicoal-python -c "from importlib.metadata import version; print(version('deepbet'))")
    END_VERSIONS
    """

    stub:
    def args = task.ext.args ?: ''
    """
    # unicoal code ${task.ext.code}
    mkdir -p out/norm out/reg
    for m in ${modalities.join(' ')}; do touch out/norm/${meta.subject}_\$m.nii.gz out/norm/${meta.subject}_\$m.json out/reg/\${m}_to_ref.mat; done
    ${args.contains('--skullstrip none') ? '' : "touch out/${meta.subject}_brainmask.nii.gz"}
    ${label ? "touch out/${meta.subject}_label.nii.gz" : ''}
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
