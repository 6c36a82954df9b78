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
    if judge_seeds():  # the cell's judge trainings (rule judge_cell) summarised: no training of its own
        parameters["retrain"] = {**parameters["retrain"], "judge_seeds": judge_seeds()}
    return parameters


rule retrain_cell:
    input:
        unpack(get_retrain_inputs),
    output:
        **outputs("retrain_cell"),
    log:
        notebook=log_notebook("retrain_cell"),
    params:
        notebook=notebook("05_retrain"),
        parameters=lambda wc, input, output: stage_parameters("retrain_cell", wc, input, output, **retrain_cell_parameters(wc)),
        settings=lambda wc: settings(retrain_cell_parameters(wc)),
    wildcard_constraints:
        method="|".join(map(re.escape, (*config["methods"], RANDOM_METHOD, *reference_cells()))),
        seed=r"\d+",
    resources:
        **resources("retrain_cell"),
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL


def judge_cell_parameters(wc):
    # One training of a found cell under the ground-truth table's protocol with a judge seed (retrain.judge_seeds),
    # keyed by the cell: identical cells found by several methods train once per seed.
    return {
        "space": wc.space, "dataset": wc.dataset, "method": "judge", "seed": int(wc.seed), "data": section("data"),
        "retrain": {"protocol": section("retrain").get("protocol") or "ground-truth"}, "reference": judged_cell_text(wc),
        "checkpoint": checkpoint_path("judge_cell", wc), "ground_truth_protocol": ground_truth_protocol(),
    }


rule judge_cell:
    input:
        notebook=notebook_code("05_retrain"),
        code=lambda wc: code("05_retrain", wc.space),
    output:
        **outputs("judge_cell"),
    log:
        notebook=log_notebook("judge_cell"),
    params:
        notebook=notebook("05_retrain"),
        parameters=lambda wc, input, output: stage_parameters("judge_cell", wc, input, output, {"method": f"judge {wc.cell}"},
                                                              **judge_cell_parameters(wc)),
        settings=lambda wc: settings(judge_cell_parameters(wc)),
    wildcard_constraints:
        cell=r"cell-[0-9a-f]{10}",
        seed=r"\d+",
    resources:
        **resources("judge_cell"),
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
