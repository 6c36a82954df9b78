# Stage 4: architecture search on the warmed-up supernet (E2NAS, its ablations, baselines), and what a user
# would do instead with no supernet (random search, the zero-cost picks). Both are Snakemake checkpoints:
# under retrain.judge_seeds the trainings that judge a found cell are keyed by the cell, known once found.


def search_architecture_parameters(wc):
    options = space_options(wc.space)  # only a space with options (DARTS) takes them: NB201 jobs do not rerun
    return {
        "space": wc.space, "dataset": wc.dataset, "method": wc.method, "seed": int(wc.seed), "search": section("search"),
        "checkpoint": checkpoint_path("search_architecture", wc), **({"space_options": options} if options else {}),
    }


checkpoint search_architecture:
    input:
        unpack(get_search_inputs),
    output:
        **outputs("search_architecture"),
    log:
        notebook=log_notebook("search_architecture"),
    params:
        notebook=notebook("04_search"),
        parameters=lambda wc, input, output: stage_parameters("search_architecture", wc, input, output, **search_architecture_parameters(wc)),
        settings=lambda wc: settings(search_architecture_parameters(wc)),
    wildcard_constraints:
        method="|".join(map(re.escape, SUPERNET_METHODS)),
        seed=r"\d+",
    resources:
        **resources("search_architecture"),
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL


def search_standalone_parameters(wc):
    # Its own split (the `data` section: no warm-up file to take it from) and scoring images (ranking.images).
    return {
        "space": wc.space, "dataset": wc.dataset, "method": wc.method, "seed": int(wc.seed), "search": section("search"),
        "data": section("data"), "images": int(section("ranking").get("images", 512)),
        "checkpoint": checkpoint_path("search_standalone", wc), "ground_truth_protocol": ground_truth_protocol(),
    }


checkpoint search_standalone:
    input:
        notebook=notebook_code("04_search"),
        code=lambda wc: code("04_search", wc.space, wc.method),
        ground_truth=lambda wc: ground_truth_files(wc.dataset),
        tables=lambda wc: nb201_table_files(wc.space),
    output:
        **outputs("search_standalone"),
    log:
        notebook=log_notebook("search_standalone"),
    params:
        notebook=notebook("04_search"),
        parameters=lambda wc, input, output: stage_parameters("search_standalone", wc, input, output, **search_standalone_parameters(wc)),
        settings=lambda wc: settings(search_standalone_parameters(wc)),
    wildcard_constraints:
        method="|".join(map(re.escape, STANDALONE_METHODS)),
        seed=r"\d+",
    resources:
        **resources("search_standalone"),
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
