# Stage 5: train each found cell from scratch on the full training set; test it.


def retrain_cell_parameters(wc):
    # The whole `data` section stays a parameter: under retrain.protocol ground-truth the split is
    # the table's, but a changed section must still rerun what it would change otherwise.
    parameters = {
        "space": wc.space, "dataset": wc.dataset, "method": wc.method, "seed": int(wc.seed),
        "data": section("data"), "retrain": section("retrain"),
        "checkpoint": checkpoint_path("retrain_cell", wc),
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
        **outputs("retrain_cell"),
    log:
        notebook=log_notebook("retrain_cell"),
    params:
        parameters=lambda wc, input, output: stage_parameters("retrain_cell", wc, input, output, **retrain_cell_parameters(wc)),
        settings=lambda wc: settings(retrain_cell_parameters(wc)),
    wildcard_constraints:
        method="|".join(E2NAS_METHODS + BASELINE_METHODS + (RANDOM_METHOD,) + tuple(map(re.escape, reference_cells()))),
        seed=r"\d+",
    resources:
        **resources("retrain_cell"),
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
