#!/usr/bin/env nextflow
/*
 * Uni-COAL benchmark: reproduces "Uni-COAL: a unified framework for cross-modality synthesis and
 * super-resolution of MR images" (Tables I-IV, VI) end to end.
 *
 *   COHORT -> PREPROCESS (register, skull strip, normalise) -> PLAN -> TRAIN -> (DEGRADE) ->
 *   SYNTHESIZE -> EVALUATE (PSNR/SSIM, nnU-Net DSC) -> STATS -> TABLES / FIGURES -> REPORT
 *
 * Every process runs one `unicoal <command>`; the experiment plan (methods x tasks x scales per
 * table) is data expanded by `unicoal plan`. See docs/pipeline.md.
 *
 *   nextflow run main.nf -profile test
 *   nextflow run main.nf -profile slurm,apptainer,gpu --dataset ixi --data_root /data/IXI --experiment table4
 */

include { PARAMS_VALIDATE } from './modules/local/params_validate'
include { COHORT          } from './modules/local/cohort'
include { REGISTER        } from './modules/local/register'
include { SKULLSTRIP      } from './modules/local/skullstrip'
include { NORMALIZE       } from './modules/local/normalize'
include { PLAN            } from './modules/local/plan'
include { TRAIN           } from './modules/local/train'
include { DEGRADE         } from './modules/local/degrade'
include { SYNTHESIZE      } from './modules/local/synthesize'
include { EVALUATE        } from './modules/local/evaluate'
include { SEGMENT_TRAIN   } from './modules/local/segment_train'
include { SEGMENT_PREDICT } from './modules/local/segment_predict'
include { SEGMENT_DICE    } from './modules/local/segment_dice'
include { STATS           } from './modules/local/stats'
include { TABLES          } from './modules/local/tables'
include { FIGURES         } from './modules/local/figures'
include { REPORT          } from './modules/local/report'

// ---------------------------------------------------------------------------------------------
// helpers (channel plumbing only; all science lives in the unicoal package)

// A per-subject bundle of files named <MODALITY>.nii.gz, <subject>_label.nii.gz and
// <MODALITY>_brainmask.nii.gz -> [meta, modalities, volumes, label or [], mask or []]
def unbundle(meta, files) {
    def all = (files instanceof List ? files : [files]).sort(false) { f -> f.name }
    def vols = all.findAll { f -> !f.name.endsWith('_label.nii.gz') && !f.name.contains('_brainmask') }
    def label = all.find { f -> f.name.endsWith('_label.nii.gz') }
    def mask = all.find { f -> f.name.contains('_brainmask') }
    return [meta, vols.collect { f -> f.simpleName }, vols, label ?: [], mask ?: []]
}

// The samplesheet a training task sees: its volumes and labels are staged under data/ and labels/
def sheetText(items) {
    def lines = items.collect { item -> "${item.subject},${item.modality},data/${item.volume.name},${item.label ? 'labels/' + item.label.name : ''},${item.split}" }
    return (['subject,modality,path,label,split'] + lines.sort()).join('\n') + '\n'
}

// Qualitative figures of the first test subject: one figure per task cell, with the source, each
// method's synthesis and the ground truth -> [cases CSV text, volumes to stage under volumes/]
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
        }
    return [(['figure,kind,label,path'] + lines).join('\n') + '\n', files.unique()]
}

def jobMeta(row) {
    def meta = [:]
    row.each { k, v -> meta[k] = v }
    return meta
}

// ---------------------------------------------------------------------------------------------
// PREPROCESS: register every modality to the reference, skull strip, normalise intensities

workflow PREPROCESS {
    take:
    rows        // one map per samplesheet row: subject, modality, path, label, split

    main:
    ch_versions = channel.empty()

    subjects = rows
        .map { row -> [row.subject, row] }
        .groupTuple(sort: { a, b -> a.modality <=> b.modality })
        .map { subject, rs ->
            def meta = [id: subject, subject: subject, split: rs[0].split]
            def label = rs.find { r -> r.label }
            [meta, rs.collect { r -> r.modality }, rs.collect { r -> r.path }, label ? label.label : []]
        }

    if (params.register) {
        REGISTER(subjects)
        ch_versions = ch_versions.mix(REGISTER.out.versions)
        registered = REGISTER.out.bundle.map { meta, files -> unbundle(meta, files) }
    } else {
        registered = subjects.map { meta, mods, vols, label -> [meta, mods, vols, label, []] }
    }

    if (params.skullstrip != 'none') {
        SKULLSTRIP(registered.map { meta, mods, vols, label, mask -> [meta, mods, vols, label] })
        ch_versions = ch_versions.mix(SKULLSTRIP.out.versions)
        stripped = SKULLSTRIP.out.bundle.map { meta, files -> unbundle(meta, files) }
    } else {
        stripped = registered
    }

    volumes = stripped.flatMap { meta, mods, vols, label, mask ->
        [mods, vols].transpose().collect { pair ->
            [meta + [id: "${meta.subject}_${pair[0]}".toString(), modality: pair[0]], pair[1], mask]
        }
    }
    NORMALIZE(volumes)
    ch_versions = ch_versions.mix(NORMALIZE.out.versions)

    emit:
    volumes  = NORMALIZE.out.volume.map { meta, vol, json -> [meta, vol] }      // [meta(subject, modality, split), volume]
    sidecars = NORMALIZE.out.volume.map { meta, vol, json -> json }             // normalisation parameters (JSON)
    masks    = stripped.map { meta, mods, vols, label, mask -> [meta.subject, mask] }   // [subject, mask or []]
    labels   = stripped.map { meta, mods, vols, label, mask -> [meta.subject, label] }  // [subject, label or []]
    versions = ch_versions
}

// ---------------------------------------------------------------------------------------------
// BENCHMARK: train every model of the plan, synthesize the test subjects, evaluate

workflow BENCHMARK {
    take:
    jobs        // rows of the plan (kind = train | synthesize)
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
    train_data = train_items.map { items ->
        [sheetText(items), items.collect { item -> item.volume }, items.findAll { item -> item.label }.collect { item -> item.label }.unique()]
    }

    // TRAIN: one task per model of the plan, whatever the method
    train_jobs = jobs.filter { row -> row.kind == 'train' }
    TRAIN(train_jobs.map { row -> [jobMeta(row), file(row.config_path)] }.combine(train_data)
        .map { meta, config, sheet, vols, labs -> [meta, config, sheet, vols, labs] })
    ch_versions = ch_versions.mix(TRAIN.out.versions)

    // DEGRADE: the thick-slice inputs the synthesize jobs need (scale 1 uses the volume as is)
    synth_jobs = jobs.filter { row -> row.kind == 'synthesize' }
    DEGRADE(synth_jobs
        .filter { row -> row.scale != '1' }
        .map { row -> [[row.subject, row.source], row.scale] }
        .unique()
        .combine(by_subject_mod, by: 0)
        .map { key, scale, vol -> [[id: "${key[0]}_${key[1]}_x${scale}".toString(), subject: key[0], modality: key[1], scale: scale], vol] })
    ch_versions = ch_versions.mix(DEGRADE.out.versions)
    inputs = DEGRADE.out.volume.map { meta, vol -> [[meta.subject, meta.modality, meta.scale], vol] }
        .mix(volumes.map { meta, vol -> [[meta.subject, meta.modality, '1'], vol] })

    // SYNTHESIZE: model x test subject x source x target x scale
    checkpoints = TRAIN.out.checkpoint.map { meta, ckpt -> [meta.id, ckpt] }
    keyed = synth_jobs.map { row -> [row.train_id, jobMeta(row)] }
    with_model = keyed.filter { tid, meta -> tid }.combine(checkpoints, by: 0).map { tid, meta, ckpt -> [meta, ckpt] }
        .mix(keyed.filter { tid, meta -> !tid }.map { tid, meta -> [meta, []] })   // methods without training
    to_synth = with_model
        .map { meta, ckpt -> [[meta.subject, meta.source, meta.scale], meta, ckpt] }
        .combine(inputs, by: 0)
        .map { key, meta, ckpt, src -> [[meta.subject, meta.target], meta, ckpt, src] }
        .combine(by_subject_mod, by: 0)
        .map { key, meta, ckpt, src, ref -> [meta, ckpt, src, ref] }
    SYNTHESIZE(to_synth)
    ch_versions = ch_versions.mix(SYNTHESIZE.out.versions)

    // EVALUATE: PSNR / SSIM against the ground truth (inside the brain mask where one exists)
    to_eval = SYNTHESIZE.out.volume
        .map { meta, pred -> [[meta.subject, meta.target], meta, pred] }
        .combine(by_subject_mod, by: 0)
        .map { key, meta, pred, truth -> [meta.subject, meta, pred, truth] }
        .combine(masks, by: 0)
        .map { subject, meta, pred, truth, mask -> [meta, pred, truth, mask] }
    EVALUATE(to_eval)
    ch_versions = ch_versions.mix(EVALUATE.out.versions)
    rows = EVALUATE.out.row

    // DSC: nnU-Net v2 trained on real target-modality images, applied to synthesized ones
    if (params.dice) {
        dice_jobs = SYNTHESIZE.out.volume.filter { meta, pred -> meta.dice == 'true' }
        seg_modalities = dice_jobs.map { meta, pred -> meta.target }.unique()
        SEGMENT_TRAIN(seg_modalities.combine(train_items.map { items -> [items] })
            .map { mod, items ->
                def mine = items.findAll { item -> item.modality == mod && item.label }
                [[id: mod], sheetText(mine), mine.collect { item -> item.volume }, mine.collect { item -> item.label }]
            }
            .filter { meta, sheet, vols, labs -> vols })
        ch_versions = ch_versions.mix(SEGMENT_TRAIN.out.versions)
        SEGMENT_PREDICT(dice_jobs.map { meta, pred -> [meta.target, meta, pred] }
            .combine(SEGMENT_TRAIN.out.model.map { meta, model -> [meta.id, model] }, by: 0)
            .map { mod, meta, pred, model -> [meta.subject, meta, model, pred] }
            .combine(masks, by: 0)
            .map { subject, meta, model, pred, mask -> [meta, model, pred, mask] })
        ch_versions = ch_versions.mix(SEGMENT_PREDICT.out.versions)
        SEGMENT_DICE(SEGMENT_PREDICT.out.seg.map { meta, seg -> [meta.subject, meta, seg] }
            .combine(labels.filter { subject, label -> label }, by: 0)
            .map { subject, meta, seg, label -> [meta, seg, label] })
        ch_versions = ch_versions.mix(SEGMENT_DICE.out.versions)
        rows = rows.mix(SEGMENT_DICE.out.row)
    }

    emit:
    rows     = rows                                             // [meta, rows.csv]
    cases    = to_synth.map { meta, ckpt, src, ref -> [meta.id, meta, src, ref] }
        .join(SYNTHESIZE.out.volume.map { meta, pred -> [meta.id, pred] })
        .map { id, meta, src, ref, pred -> [meta, src, ref, pred] }  // [meta, source, truth, synthesized]
    versions = ch_versions
}

// ---------------------------------------------------------------------------------------------

workflow {
    main:
    ch_versions = channel.empty()

    // 0. parameters, checked against nextflow_schema.json by `unicoal params validate`
    PARAMS_VALIDATE(
        groovy.json.JsonOutput.toJson(params),
        file("${projectDir}/nextflow_schema.json", checkIfExists: true)
    )
    ch_versions = ch_versions.mix(PARAMS_VALIDATE.out.versions)

    // 1. COHORT: a samplesheet (--input) or one made from a dataset (--dataset)
    if (params.input) {
        sheet = channel.value([[id: file(params.input).baseName], file(params.input, checkIfExists: true)])
    } else {
        COHORT(channel.value([
            id: params.dataset, dataset: params.dataset, subjects: params.phantom_subjects,
            preset: params.phantom_preset, seed: params.seed, root: params.data_root,
        ]))
        ch_versions = ch_versions.mix(COHORT.out.versions)
        sheet = COHORT.out.samplesheet
    }

    // 2. PLAN: validate the samplesheet and expand the experiment into jobs
    PLAN(PARAMS_VALIDATE.out.params, params.experiment, sheet)
    ch_versions = ch_versions.mix(PLAN.out.versions)
    rows = PLAN.out.samplesheet.flatMap { f -> f.splitCsv(header: true) }
        .map { row -> [subject: row.subject, modality: row.modality, split: row.split, path: file(row.path), label: row.label ? file(row.label) : null] }
    jobs = PLAN.out.jobs.flatMap { f -> f.splitCsv(header: true).collect { row -> row + [config_path: row.config ? f.parent.resolve(row.config).toString() : ''] } }

    // 3. PREPROCESS
    PREPROCESS(rows)
    ch_versions = ch_versions.mix(PREPROCESS.out.versions)

    // 4-6. TRAIN -> SYNTHESIZE -> EVALUATE
    BENCHMARK(jobs, PREPROCESS.out.volumes, PREPROCESS.out.masks, PREPROCESS.out.labels)
    ch_versions = ch_versions.mix(BENCHMARK.out.versions)

    // 7. STATS, TABLES, FIGURES, REPORT
    all_rows = BENCHMARK.out.rows.map { meta, csv -> csv }.toSortedList { a, b -> a.name <=> b.name }
        .filter { files -> files }
        .map { files -> [[id: params.experiment], files] }
    STATS(all_rows)
    ch_versions = ch_versions.mix(STATS.out.versions)
    TABLES(all_rows.join(STATS.out.stats))
    ch_versions = ch_versions.mix(TABLES.out.versions)
    cases = BENCHMARK.out.cases.toSortedList { a, b -> a[0].id <=> b[0].id }
        .filter { items -> items }
        .map { items -> [[id: params.experiment]] + figureCases(items) }
    FIGURES(cases)
    ch_versions = ch_versions.mix(FIGURES.out.versions)

    // one block per process, sorted, so the file (and REPORT's cache key) is the same on -resume
    versions_yml = ch_versions.map { f -> f.text.trim() }.unique()
        .collectFile(name: 'software_versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true, newLine: true)
    preprocessing = PREPROCESS.out.sidecars.toSortedList { a, b -> a.name <=> b.name }
    REPORT(TABLES.out.tables.join(FIGURES.out.figures), PLAN.out.samplesheet, preprocessing, versions_yml)
}
