#!/usr/bin/env nextflow
/*
 * Uni-COAL benchmark: reproduces "Uni-COAL: a unified framework for cross-modality synthesis and
 * super-resolution of MR images" (Tables I-IV, VI) end to end.
 *
 *   COHORT -> PREPROCESS (register, skull strip, normalise: one job per subject) -> PLAN -> TRAIN -> (DEGRADE) ->
 *   SYNTHESIZE -> EVALUATE (PSNR/SSIM), SEGMENT (nnU-Net DSC) -> STATS -> TABLES / FIGURES / CURVES -> REPORT
 *
 * Every process runs one `unicoal <command>`; the experiment plan (methods x tasks x scales per
 * table) is data expanded by `unicoal plan`. See docs/pipeline.md.
 *
 *   nextflow run main.nf -profile test
 *   nextflow run main.nf -profile slurm,apptainer,gpu --dataset ixi --data_root /data/IXI --experiment table4
 */

include { COHORT          } from './modules/local/cohort'
include { PREPROCESS      } from './modules/local/preprocess'
include { PLAN            } from './modules/local/plan'
include { TRAIN           } from './modules/local/train'
include { DEGRADE         } from './modules/local/degrade'
include { SYNTHESIZE      } from './modules/local/synthesize'
include { EVALUATE        } from './modules/local/evaluate'
include { SEGMENT_TRAIN   } from './modules/local/segment_train'
include { SEGMENT         } from './modules/local/segment'
include { SEGMENT_REAL    } from './modules/local/segment_real'
include { STATS           } from './modules/local/stats'
include { TABLES          } from './modules/local/tables'
include { FIGURES         } from './modules/local/figures'
include { CURVES          } from './modules/local/curves'
include { REPORT          } from './modules/local/report'

// ---------------------------------------------------------------------------------------------
// launch checks: run in this Nextflow process before any task (no task ever sees `params`)

// Parameters of nextflow_schema.json (the one source of truth): name -> property
def loadSchema(path) {
    def doc = new groovy.json.JsonSlurper().parse(new File(path.toString()))
    def props = [:]
    props.putAll(doc.properties ?: [:])
    (doc['$defs'] ?: [:]).each { group, g -> props.putAll(g.properties ?: [:]) }
    return props
}

def typeOk(type, value) {
    if (type == 'null') return value == null
    if (type == 'string') return value instanceof CharSequence
    if (type == 'boolean') return value instanceof Boolean
    if (type == 'integer') return (value instanceof Integer || value instanceof Long || value instanceof BigInteger)
    if (type == 'number') return value instanceof Number
    return false
}

// The problem with one value (a phrase), or null; the same checks and words as unicoal/params.py
def checkValue(prop, value) {
    def types = prop.type instanceof List ? prop.type : [prop.type ?: 'string']
    if (!types.any { t -> typeOk(t, value) }) {
        return "must be ${types.join(' or ')}, got ${value == null ? 'null' : value.getClass().simpleName} ${value}"
    }
    if (value == null) return null
    if (prop.enum != null && !(prop.enum.contains(value instanceof CharSequence ? value.toString() : value))) {
        return "must be one of ${prop.enum.join(', ')}, got '${value}'"
    }
    if (prop.pattern && value instanceof CharSequence && !(value.toString() =~ prop.pattern)) {
        return "'${value}' does not match the pattern ${prop.pattern}"
    }
    if (prop.minimum != null && value instanceof Number && value < prop.minimum) return "must be >= ${prop.minimum}, got ${value}"
    if (prop.maximum != null && value instanceof Number && value > prop.maximum) return "must be <= ${prop.maximum}, got ${value}"
    if (prop.exists && value instanceof CharSequence && value) {
        def f = file(value.toString())
        if (prop.format == 'directory-path' && !f.isDirectory()) return "folder not found: ${value} (looked for ${f})"
        if (prop.format == 'file-path' && !f.isFile()) return "file not found: ${value} (looked for ${f})"
    }
    return null
}

def camelToSnake(name) {
    return name.replaceAll(/([A-Z])/, '_$1').toLowerCase()
}

// Every problem of the run's parameters, one phrase each (empty when valid)
def validateParameters(values, schema) {
    def problems = []
    values.each { name, value ->
        if (schema.containsKey(name)) {
            def msg = checkValue(schema[name], value)
            if (msg) problems << "--${name} ${msg}".toString()
        } else if (!schema.containsKey(camelToSnake(name).replace('-', '_')) && !schema.containsKey(name.replace('-', '_'))) {
            def close = schema.keySet().min { k -> levenshtein(k, name) }
            def hint = close && levenshtein(close, name) <= Math.max(2, (int) (name.size() / 3)) ? " (did you mean --${close}?)" : ''
            problems << "--${name} is not a parameter of this pipeline${hint}".toString()
        }
    }
    if (!values.input && values.dataset in ['ixi', 'brats'] && !values.data_root) {
        problems << "--dataset ${values.dataset} needs --data_root (the folder of the download) or --input SHEET".toString()
    }
    if (values.skullstrip == 'none' && values.convention == 'brainmask') {
        problems << '--convention brainmask needs a brain mask: set --skullstrip deepbet|threshold'
    }
    return problems
}

def levenshtein(a, b) {
    def prev = (0..b.size()).collect { j -> j }
    (1..a.size()).each { i ->
        def cur = [i]
        (1..b.size()).each { j ->
            cur << [prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)].min()
        }
        prev = cur
    }
    return prev[b.size()]
}

// `nextflow run main.nf --help`: the parameters, grouped as in the schema
def helpText(path) {
    def doc = new groovy.json.JsonSlurper().parse(new File(path.toString()))
    def lines = ["${doc.title}: ${doc.description}", '', 'Usage: nextflow run main.nf -profile <test|slurm,apptainer,gpu|...> [--parameter value ...]', '']
    (doc['$defs'] ?: [:]).each { key, group ->
        lines << "${group.title}:".toString()
        group.properties.each { name, prop ->
            def types = prop.type instanceof List ? prop.type.findAll { t -> t != 'null' } : [prop.type]
            def dflt = prop.default == null ? '' : " [default: ${prop.default == '' ? "''" : prop.default}]"
            def choices = prop.enum ? " (${prop.enum.join('|')})" : ''
            lines << "  --${name.padRight(20)} ${types.join('|').padRight(8)} ${prop.description}${choices}${dflt}".toString()
        }
        lines << ''
    }
    lines << 'Details: docs/pipeline.md'
    return lines.join('\n')
}

def gitRevision(root) {
    try {
        def proc = ['git', '-C', root.toString(), 'rev-parse', 'HEAD'].execute()
        proc.waitFor()
        return proc.exitValue() == 0 ? proc.text.trim() : 'unknown'
    } catch (Exception err) {
        return 'unknown'
    }
}

// ---------------------------------------------------------------------------------------------
// helpers (channel plumbing only; all science lives in the unicoal package)

def asList(x) {
    return x instanceof List ? x : (x ? [x] : [])
}

// The samplesheet a training task sees: its volumes and labels are staged under data/ and labels/
def sheetText(items) {
    def lines = items.collect { item -> "${item.subject},${item.modality},data/${item.volume.name},${item.label ? 'labels/' + item.label.name : ''},${item.split}" }
    return (['subject,modality,path,label,split'] + lines.sort()).join('\n') + '\n'
}

// Qualitative figures of the first test subject: one figure per task cell, with the source, each
// method's synthesis, the ground truth and the subject's label map if it has one
// -> [cases CSV text, volumes to stage under volumes/]
def figureCases(items) {
    def subject = items.collect { item -> item[0].subject }.min()
    def mine = items.findAll { item -> item[0].subject == subject }
    def lines = []
    def files = []
    mine.groupBy { item -> "${item[0].table}_${subject}_${item[0].source}-${item[0].target}_x${item[0].scale}".toString() }
        .each { figure, group ->
            def first = group[0]
            lines << "${figure},source,${first[0].source} x${first[0].scale},volumes/${first[1].name}"
            group.each { item -> lines << "${figure},method,${item[0].method_id},volumes/${item[3].name}" }
            lines << "${figure},target,${first[0].target},volumes/${first[2].name}"
            files += [first[1], first[2]] + group.collect { item -> item[3] }
            if (first[4]) {   // the subject's lesion labels: FIGURES cuts through the lesion (--centre label)
                lines << "${figure},label,label,volumes/${first[4].name}"
                files << first[4]
            }
        }
    return [(['figure,kind,label,path'] + lines).join('\n') + '\n', files.unique()]
}

def jobMeta(row) {
    def meta = [:]
    row.each { k, v -> meta[k] = v }
    return meta
}

// Synthesis is batched per model (one task loads it once for all its test subjects and cells);
// methods without training are batched per table and method
def batchKey(row) {
    return row.train_id ?: "${row.table}-${row.method}".toString()
}

// ---------------------------------------------------------------------------------------------
// PREPROCESSING: register every modality to the reference, skull strip, normalise intensities, in
// one task per subject (`unicoal preprocess`): a cohort of N subjects submits N preprocessing jobs

workflow PREPROCESSING {
    take:
    rows        // one map per samplesheet row: subject, modality, path, label, split

    main:
    subjects = rows
        .map { row -> [row.subject, row] }
        .groupTuple(sort: { a, b -> a.modality <=> b.modality })
        .map { subject, rs ->
            def meta = [id: subject, subject: subject, split: rs[0].split]
            def label = rs.find { r -> r.label }
            [meta, rs.collect { r -> r.modality }, rs.collect { r -> r.path }, label ? label.label : []]
        }
    PREPROCESS(subjects)

    // <subject>_<MOD>.nii.gz (+ .json) per modality
    normalised = PREPROCESS.out.volumes.flatMap { meta, vols, jsons ->
        asList(vols).collect { vol ->
            def mod = vol.name.substring(meta.subject.size() + 1).replaceAll(/\.nii\.gz$/, '')
            [meta + [id: "${meta.subject}_${mod}".toString(), modality: mod], vol]
        }
    }
    extras = PREPROCESS.out.extras.map { meta, files ->
        def all = asList(files)
        [meta.subject, all.find { f -> f.name == "${meta.subject}_brainmask.nii.gz" } ?: [], all.find { f -> f.name == "${meta.subject}_label.nii.gz" } ?: []]
    }

    emit:
    volumes  = normalised                                                                // [meta(subject, modality, split), volume]
    sidecars = PREPROCESS.out.volumes.flatMap { meta, vols, jsons -> asList(jsons) }     // normalisation parameters (JSON)
    masks    = extras.map { subject, mask, label -> [subject, mask] }                     // [subject, <subject>_brainmask.nii.gz or []]
    labels   = extras.map { subject, mask, label -> [subject, label] }                    // [subject, <subject>_label.nii.gz or []]
    versions = PREPROCESS.out.versions
}

// ---------------------------------------------------------------------------------------------
// BENCHMARK: train every model of the plan, synthesize the test subjects, evaluate

workflow BENCHMARK {
    take:
    train_jobs  // [meta (id, method, method_id, max_steps), modalities the model reads or writes, train config YAML text]
    synth_jobs  // rows of the plan with kind = synthesize (+ batch, batch_size)
    volumes     // [meta, normalised volume]
    masks       // [subject, mask or []]
    labels      // [subject, label or []]

    main:
    ch_versions = channel.empty()
    by_subject_mod = volumes.map { meta, vol -> [[meta.subject, meta.modality], vol] }

    // the training samplesheet: train and val subjects only (the test split is never seen)
    train_items = volumes
        .filter { meta, vol -> meta.split != 'test' }
        .map { meta, vol -> [meta.subject, meta, vol] }
        .combine(labels, by: 0)
        .map { subject, meta, vol, label -> [subject: subject, modality: meta.modality, split: meta.split, volume: vol, label: label ?: null] }
        .toSortedList { a, b -> "${a.subject}/${a.modality}" <=> "${b.subject}/${b.modality}" }
    // TRAIN: one task per model of the plan, whatever the method; the config travels as text and
    // the task stages only the volumes of the modalities its model reads or writes (no labels):
    // a changed FLAIR volume re-trains only the models that read FLAIR
    TRAIN(train_jobs.combine(train_items.map { items -> [items] })
        .map { meta, mods, config, items ->
            def mine = items.findAll { item -> item.modality in mods }.collect { item -> item + [label: null] }
            [meta, config, sheetText(mine), mine.collect { item -> item.volume }]
        })
    ch_versions = ch_versions.mix(TRAIN.out.versions)

    // DEGRADE: the thick-slice inputs the synthesize jobs need, one task per test subject
    // (scale 1 uses the volume as is)
    needs = synth_jobs
        .filter { row -> row.scale != '1' }
        .map { row -> [row.subject, [row.source, row.scale]] }
        .unique()
        .groupTuple(sort: { a, b -> a.join('/') <=> b.join('/') })
    DEGRADE(needs
        .combine(volumes.map { meta, vol -> [meta.subject, meta.modality, vol] }, by: 0)
        .filter { subject, specs, mod, vol -> specs.any { spec -> spec[0] == mod } }
        .map { subject, specs, mod, vol -> [groupKey(subject, specs.collect { spec -> spec[0] }.unique().size()), specs, vol] }
        .groupTuple(remainder: true)
        .map { subject, specs, vols -> [[id: subject.toString(), subject: subject.toString(), specs: specs[0]], vols.sort { f -> f.name }] })
    ch_versions = ch_versions.mix(DEGRADE.out.versions)
    inputs = DEGRADE.out.volumes
        .flatMap { meta, vols ->
            def files = asList(vols)
            meta.specs.collect { spec -> [[meta.subject, spec[0], spec[1]], files.find { f -> f.name == "${meta.subject}_${spec[0]}_x${spec[1]}.nii.gz" }] }
        }
        .mix(volumes.map { meta, vol -> [[meta.subject, meta.modality, '1'], vol] })

    // every synthesize job with its model (or [] for methods without training), source, ground truth and mask
    checkpoints = TRAIN.out.checkpoint.map { meta, ckpt -> [meta.id, ckpt] }
    keyed = synth_jobs.map { row -> [row.train_id, jobMeta(row)] }
    with_model = keyed.filter { tid, meta -> tid }.combine(checkpoints, by: 0).map { tid, meta, ckpt -> [meta, ckpt] }
        .mix(keyed.filter { tid, meta -> !tid }.map { tid, meta -> [meta, []] })
    per_job = with_model
        .map { meta, ckpt -> [[meta.subject, meta.source, meta.scale], meta, ckpt] }
        .combine(inputs, by: 0)
        .map { key, meta, ckpt, src -> [[meta.subject, meta.target], meta, ckpt, src] }
        .combine(by_subject_mod, by: 0)
        .map { key, meta, ckpt, src, truth -> [meta.subject, meta, ckpt, src, truth] }
        .combine(masks, by: 0)
        .map { subject, meta, ckpt, src, truth, mask -> [meta, ckpt, src, truth, mask] }

    // SYNTHESIZE: one task per model, over all its test subjects, sources, targets and scales;
    // everything sorted so that the task's inputs (and cache key) do not depend on arrival order
    batches = per_job
        .map { meta, ckpt, src, truth, mask -> [groupKey(meta.batch, meta.batch_size as int), meta, ckpt, src, truth, mask] }
        .groupTuple(remainder: true)
        .map { key, metas, ckpts, srcs, truths, msks ->
            def first = metas[0]
            def ms = msks.findAll { m -> m }.unique().sort { m -> m.toString() }
            def jobs = [metas, srcs, truths, msks].transpose()
                .collect { meta, src, truth, mask ->
                    [id: meta.id, table: meta.table, method_id: meta.method_id, method: meta.method, dataset: meta.dataset,
                     task: meta.task, subject: meta.subject, source: meta.source, target: meta.target, scale: meta.scale,
                     dice: meta.dice, input: src.name, like: truth.name, mask_index: mask ? ms.indexOf(mask) : -1]
                }
                .sort { a, b -> a.id <=> b.id }
            def bmeta = [id: key.toString(), train_id: first.train_id, method: first.method, method_id: first.method_id]
            [bmeta, jobs, ckpts[0], srcs.unique().sort { f -> f.name }, truths.unique().sort { f -> f.name }, ms]
        }
    SYNTHESIZE(batches.map { bmeta, jobs, ckpt, srcs, truths, ms -> [bmeta, jobs, ckpt, srcs, truths] })
    ch_versions = ch_versions.mix(SYNTHESIZE.out.versions)

    // EVALUATE: PSNR / SSIM against the ground truth (inside the brain mask where one exists),
    // one task per synthesis batch
    to_eval = SYNTHESIZE.out.volumes
        .map { bmeta, jobs, preds -> [bmeta.id, preds] }
        .join(batches.map { bmeta, jobs, ckpt, srcs, truths, ms -> [bmeta.id, bmeta, jobs, truths, ms] })
        .map { id, preds, bmeta, jobs, truths, ms -> [bmeta, jobs, asList(preds).findAll { f -> f.name.endsWith('.nii.gz') }.sort { f -> f.name }, truths, ms] }
    EVALUATE(to_eval)
    ch_versions = ch_versions.mix(EVALUATE.out.versions)
    rows = EVALUATE.out.rows.flatMap { meta, files -> asList(files) }

    // per synthesized volume: [job meta, prediction]
    predictions = SYNTHESIZE.out.volumes.flatMap { bmeta, jobs, preds ->
        def files = asList(preds)
        jobs.collect { job -> [job, files.find { f -> f.name == "${job.id}.nii.gz" }] }
    }

    // DSC: nnU-Net v2 trained on real target-modality images, applied to synthesized ones
    if (params.dice) {
        // the modalities (and datasets) to segment, from the plan rather than from the synthesized
        // volumes: nnU-Net (hours) trains beside the synthesis models from the start, also when no
        // untrained reference row (Copy) is synthesized first (--methods without references), instead
        // of waiting for the first model to finish; the task's inputs, and so its cache key, are the same
        dice_jobs = synth_jobs.map { row -> jobMeta(row) }.filter { meta -> meta.dice == 'true' }
        seg_modalities = dice_jobs.map { meta -> meta.target }.unique()
        SEGMENT_TRAIN(seg_modalities.combine(train_items.map { items -> [items] })
            .map { mod, items ->
                def mine = items.findAll { item -> item.modality == mod && item.label }
                [[id: mod], sheetText(mine), mine.collect { item -> item.volume }, mine.collect { item -> item.label }]
            }
            .filter { meta, sheet, vols, labs -> vols })
        ch_versions = ch_versions.mix(SEGMENT_TRAIN.out.versions)
        models = SEGMENT_TRAIN.out.model.map { meta, model -> [meta.id, model] }
        labelled = labels.filter { subject, label -> label }   // [subject, label] of the subjects that have one

        // the upper bound: the same nnU-Net on the real test images of its modality (method Real)
        test_items = volumes
            .filter { meta, vol -> meta.split == 'test' }
            .map { meta, vol -> [meta.subject, meta, vol] }
            .combine(labelled, by: 0)
            .map { subject, meta, vol, label -> [subject: subject, modality: meta.modality, split: meta.split, volume: vol, label: label] }
            .toSortedList { a, b -> "${a.subject}/${a.modality}" <=> "${b.subject}/${b.modality}" }
        SEGMENT_REAL(dice_jobs.map { meta -> [meta.target, meta.dataset ?: ''] }.unique()
            .combine(models, by: 0)
            .combine(test_items.map { items -> [items] })
            .map { mod, dataset, model, items ->
                def mine = items.findAll { item -> item.modality == mod }
                [[id: mod, dataset: dataset], model, sheetText(mine), mine.collect { item -> item.volume }, mine.collect { item -> item.label }.unique()]
            }
            .filter { meta, model, sheet, vols, labs -> vols })
        ch_versions = ch_versions.mix(SEGMENT_REAL.out.versions)
        rows = rows.mix(SEGMENT_REAL.out.row.map { meta, csv -> csv })
        // SEGMENT: one task per synthesis batch and target modality (nnU-Net loaded once), only
        // the subjects that have a ground-truth label map
        with_labels = labelled.toList().map { pairs -> [pairs] }
        seg_batches = SYNTHESIZE.out.volumes
            .map { bmeta, jobs, preds -> [bmeta.id, bmeta, jobs, asList(preds)] }
            .join(batches.map { bmeta, jobs, ckpt, srcs, truths, ms -> [bmeta.id, ms] })
            .flatMap { id, bmeta, jobs, preds, ms ->
                jobs.findAll { job -> job.dice == 'true' }.groupBy { job -> job.target }.collect { target, group ->
                    [target, [id: "${id}-${target}".toString(), batch: id, target: target], group.collect { job ->
                        [job, preds.find { f -> f.name == "${job.id}.nii.gz" }, job.mask_index >= 0 ? ms[job.mask_index] : null]
                    }]
                }
            }
            .combine(models, by: 0)
            .combine(with_labels)
            .map { target, meta, items, model, pairs ->
                def label_of = pairs.collectEntries { pair -> [(pair[0]): pair[1]] }
                def mine = items.findAll { item -> label_of[item[0].subject] }.sort { item -> item[0].id }
                def jobs = mine.collect { job, pred, mask ->
                    [id: job.id, table: job.table, method_id: job.method_id, task: job.task ?: '', dataset: job.dataset ?: '', subject: job.subject,
                     source: job.source, target: job.target, scale: job.scale, pred: pred.name, mask: mask ? mask.name : '',
                     label: label_of[job.subject].name, cell: job.id.replace("-${job.subject}-", '-').toString()]   // cell: the job id without the subject
                }
                [meta, jobs, model, mine.collect { item -> item[1] }, mine.collect { item -> item[2] }.findAll { m -> m }.unique(),
                 mine.collect { item -> label_of[item[0].subject] }.unique()]
            }
            .filter { meta, jobs, model, preds, msks, labs -> jobs }
        SEGMENT(seg_batches)
        ch_versions = ch_versions.mix(SEGMENT.out.versions)
        rows = rows.mix(SEGMENT.out.rows.flatMap { meta, files -> asList(files) })
    }

    emit:
    rows     = rows                                             // result rows CSVs
    runs     = TRAIN.out.run                                    // [meta, <train id>/: model.pt, config.json, log.csv, val.csv]
    cases    = per_job.map { meta, ckpt, src, truth, mask -> [meta.id, meta, src, truth] }
        .join(predictions.map { meta, pred -> [meta.id, pred] })
        .map { id, meta, src, truth, pred -> [meta.subject, meta, src, truth, pred] }
        .combine(labels, by: 0)
        .map { subject, meta, src, truth, pred, label -> [meta, src, truth, pred, label ?: []] }  // [meta, source, truth, synthesized, label or []]
    versions = ch_versions
}

// ---------------------------------------------------------------------------------------------

workflow {
    main:
    // 0. parameters: checked against nextflow_schema.json and every path resolved against the
    //    launch folder, here, before any task; tasks get only the values they use
    def schema_path = "${projectDir}/nextflow_schema.json"
    if (params.help) {
        log.info(helpText(schema_path))
        exit(0)
    }
    def problems = validateParameters(params, loadSchema(schema_path))
    if (problems) {
        error("unicoal: error: invalid pipeline parameters: ${problems.join('; ')} (fix: see `nextflow run main.nf --help` or docs/pipeline.md)")
    }
    if (workflow.containerEngine in ['apptainer', 'singularity'] && !params.apptainer_image) {
        error("unicoal: error: -profile ${workflow.containerEngine} needs the image: --apptainer_image is not set (fix: build unicoal.sif as docs/pipeline.md, Containers, says and pass --apptainer_image unicoal.sif)")
    }
    // the whole package's hash, computed once at launch by conf/modules.config (scripts/code_hash.py)
    def code_hash = workflow.session.config.navigate('env.UNICOAL_CODE_HASH') ?: 'unknown'
    def input = params.input ? file(params.input, checkIfExists: true) : null
    def data_root = params.data_root ? file(params.data_root, checkIfExists: true) : null
    def ckpt_root = file(params.checkpoint_dir ?: "${workflow.workDir}/checkpoints")
    ckpt_root.mkdirs()
    def resolved = [:]
    params.each { k, v -> resolved[k] = v }
    resolved.putAll([input: input?.toString(), data_root: data_root?.toString(), checkpoint_dir: ckpt_root.toString(),
                     apptainer_image: params.apptainer_image ? file(params.apptainer_image).toString() : null])
    def stamp = workflow.start.format(java.time.format.DateTimeFormatter.ofPattern('yyyy-MM-dd_HH-mm-ss'))
    def info_dir = file("${params.outdir}/pipeline_info")
    info_dir.mkdirs()
    info_dir.resolve("params_${stamp}.json").text = groovy.json.JsonOutput.prettyPrint(groovy.json.JsonOutput.toJson(resolved)) + '\n'

    ch_versions = channel.empty()

    // 1. COHORT: a samplesheet (--input) or one made from a dataset (--dataset)
    if (input) {
        sheet = channel.value([[id: input.baseName], input])
    } else {
        def cohort = params.dataset == 'phantom'
            ? [id: 'phantom', dataset: 'phantom', subjects: params.phantom_subjects, preset: params.phantom_preset, seed: params.seed]
            : [id: params.dataset, dataset: params.dataset]
        COHORT(channel.value([cohort, data_root ?: []]))
        ch_versions = ch_versions.mix(COHORT.out.versions)
        sheet = COHORT.out.samplesheet
    }

    // 2. PLAN: validate the samplesheet and expand the experiment into jobs
    PLAN(params.experiment, sheet)
    ch_versions = ch_versions.mix(PLAN.out.versions)
    rows = PLAN.out.samplesheet.flatMap { f -> f.splitCsv(header: true) }
        .map { row -> [subject: row.subject, modality: row.modality, split: row.split, path: file(row.path), label: row.label ? file(row.label) : null] }
    plan_rows = PLAN.out.jobs.flatMap { f ->
        def all = f.splitCsv(header: true)
        def sizes = all.findAll { row -> row.kind == 'synthesize' }.countBy { row -> batchKey(row) }
        all.collect { row ->
            // a train job: only what names and sizes the model, and its config by content (never
            // the path of PLAN's work directory), so that TRAIN's cache key is the model's
            row.kind == 'train'
                ? [kind: 'train', meta: [id: row.id, method: row.method, method_id: row.method_id, max_steps: row.max_steps],
                   mods: (row.sources.tokenize(';') + row.targets.tokenize(';')).unique().sort(), config: f.parent.resolve(row.config).text]
                : [kind: 'synthesize', row: row + [batch: batchKey(row), batch_size: sizes[batchKey(row)]]]
        }
    }
    train_jobs = plan_rows.filter { job -> job.kind == 'train' }.map { job -> [job.meta, job.mods, job.config] }
    synth_jobs = plan_rows.filter { job -> job.kind == 'synthesize' }.map { job -> job.row }

    // 3. PREPROCESS
    PREPROCESSING(rows)
    ch_versions = ch_versions.mix(PREPROCESSING.out.versions)

    // 4-6. TRAIN -> SYNTHESIZE -> EVALUATE
    BENCHMARK(train_jobs, synth_jobs, PREPROCESSING.out.volumes, PREPROCESSING.out.masks, PREPROCESSING.out.labels)
    ch_versions = ch_versions.mix(BENCHMARK.out.versions)

    // 7. STATS, TABLES, FIGURES, REPORT
    all_rows = BENCHMARK.out.rows.toSortedList { a, b -> a.name <=> b.name }
        .filter { files -> files }
        .map { files -> [[id: params.experiment], files] }
    STATS(all_rows)
    ch_versions = ch_versions.mix(STATS.out.versions)
    TABLES(all_rows.join(STATS.out.stats), PLAN.out.configs)
    ch_versions = ch_versions.mix(TABLES.out.versions)
    cases = BENCHMARK.out.cases.toSortedList { a, b -> a[0].id <=> b[0].id }
        .filter { items -> items }
        .map { items -> [[id: params.experiment]] + figureCases(items) }
    FIGURES(cases)
    ch_versions = ch_versions.mix(FIGURES.out.versions)
    // learning curves on the validation split: every trained model's val.csv, one plot per table
    CURVES(BENCHMARK.out.runs.map { meta, run -> run }.toSortedList { a, b -> a.name <=> b.name }.map { runs -> [[id: params.experiment], runs] },
           PLAN.out.jobs)
    ch_versions = ch_versions.mix(CURVES.out.versions)

    // one block per process plus the pipeline's own, sorted, so the file (and REPORT's cache
    // key) is the same on -resume of the same code
    pipeline_versions = [
        '"Pipeline":',
        "    unicoal_pipeline: ${workflow.manifest.version}",
        "    nextflow: ${workflow.nextflow.version}",
        "    revision: ${workflow.commitId ?: gitRevision(projectDir)}",
        "    code_hash: ${code_hash}",
    ].join('\n')
    versions_yml = ch_versions.map { f -> f.text.trim() }.mix(channel.value(pipeline_versions)).unique()
        .collectFile(name: 'software_versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true, newLine: true)
    preprocessing = PREPROCESSING.out.sidecars.toSortedList { a, b -> a.name <=> b.name }
    REPORT(TABLES.out.tables.join(FIGURES.out.figures), PLAN.out.samplesheet, preprocessing, versions_yml, PLAN.out.configs,
           CURVES.out.curves.map { meta, dir -> dir }, groovy.json.JsonOutput.toJson(resolved))
}
