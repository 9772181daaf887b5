process SEGMENT_DICE {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(seg, stageAs: 'seg/*'), path(label, stageAs: 'label/*')

    output:
    tuple val(meta), path("${meta.id}_dice.csv"), emit: row
    path 'versions.yml'                          , emit: versions

    script:
    def args = task.ext.args ?: ''
    def task_arg = meta.task ? "--task '${meta.task}'" : ''
    """
    unicoal segment dice --pred ${seg} --truth ${label} --subject ${meta.subject} --out ${meta.id}_dice.csv \\
        --method '${meta.method_id}' ${task_arg} --dataset ${meta.dataset} \\
        --source ${meta.source} --target ${meta.target} --scale ${meta.scale} --table ${meta.table} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
    END_VERSIONS
    """

    stub:
    """
    echo 'table,dataset,task,method,subject,source,target,scale,metric,value,convention' > ${meta.id}_dice.csv
    echo '${meta.table},${meta.dataset},${meta.task},${meta.method_id},${meta.subject},${meta.source},${meta.target},${meta.scale},DSC,0.8,brats-empty-1' >> ${meta.id}_dice.csv
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
