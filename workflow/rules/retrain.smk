# Stage 5: train each found cell from scratch on the full training set; test it.


def retrain_cell_parameters(wc):
    # The whole `data` section stays a parameter: under retrain.protocol ground-truth the split is
    # the table's, but a changed section must still rerun what it would change otherwise.
    parameters = {
        "space": wc.space, "dataset": wc.dataset, "method": wc.method, "seed": int(wc.seed),
        "data": section("data"), "retrain": section("retrain"),
        "checkpoint": checkpoint_path("retrain_cell", f"{wc.dataset}/{wc.space}/{wc.method}/seed{wc.seed}"),
    }
    if is_reference(wc.method):  # a published or given cell instead of a found one
        parameters["reference"] = reference_cells()[wc.method]
    if section("retrain").get("protocol"):  # the table's protocol replaces every other retrain key
        parameters["retrain"] = {"protocol": section("retrain")["protocol"]}
        parameters["ground_truth_protocol"] = ground_truth_protocol()
    return parameters


rule retrain_cell:
    input:
        unpack(get_retrain_inputs),
    output:
        metrics=retrain_metrics("{dataset}", "{space}", "{method}", "{seed}"),
    log:
        notebook=log_notebook("retrain_cell", "{dataset}/{space}/{method}/seed{seed}"),
    params:
        parameters=lambda wc, input, output: stage_parameters(
            "retrain_cell", log_notebook("retrain_cell", "{dataset}/{space}/{method}/seed{seed}"), wc, input, output,
            {"space": wc.space, "dataset": wc.dataset, "method": wc.method, "seed": wc.seed},
            **retrain_cell_parameters(wc),
        ),
        settings=lambda wc: settings(retrain_cell_parameters(wc)),
    wildcard_constraints:
        method="|".join(E2NAS_METHODS + BASELINE_METHODS + (RANDOM_METHOD,) + tuple(map(re.escape, reference_cells()))),
        seed=r"\d+",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=lambda wc, attempt: 240 * attempt,
        cpus_per_task=lambda wc, threads: threads,
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
