process EVALUATE {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(pred, stageAs: 'pred/*'), path(target, stageAs: 'target/*'), path(mask, stageAs: 'mask/*')

    output:
    tuple val(meta), path("${meta.id}.csv"), emit: row
    path 'versions.yml'                     , emit: versions

    script:
    def args = task.ext.args ?: ''
    def mask_arg = mask ? "--mask ${mask}" : ''
    """
    unicoal evaluate --pred ${pred} --target ${target} ${mask_arg} --out ${meta.id}.csv \\
        --method ${meta.method_id} --task ${meta.task} --dataset ${meta.dataset} --subject ${meta.subject} \\
        --source ${meta.source} --target-modality ${meta.target} --scale ${meta.scale} --table ${meta.table} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        unicoal: \$(unicoal --version 2>&1 | sed 's/^unicoal //')
        scikit-image: \$(python3 -c "from importlib.metadata import version; print(version('scikit-image'))")
    END_VERSIONS
    """

    stub:
    """
    echo 'table,dataset,task,method,subject,source,target,scale,metric,value,convention' > ${meta.id}.csv
    echo '${meta.table},${meta.dataset},${meta.task},${meta.method_id},${meta.subject},${meta.source},${meta.target},${meta.scale},PSNR,30.0,published' >> ${meta.id}.csv
    printf '"%s":\\n    unicoal: stub\\n' "${task.process}" > versions.yml
    """
}
