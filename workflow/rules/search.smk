# Stage 4: architecture search on the warmed-up supernet (E2NAS, its ablations, baselines).


def search_architecture_parameters(wc):
    options = space_options(wc.space)  # only a space with options (DARTS) takes them: NB201 jobs do not rerun
    return {
        "space": wc.space, "dataset": wc.dataset, "method": wc.method, "seed": int(wc.seed), "search": section("search"),
        "checkpoint": checkpoint_path("search_architecture", wc), **({"space_options": options} if options else {}),
    }


rule search_architecture:
    input:
        unpack(get_search_inputs),
    output:
        **outputs("search_architecture"),
    log:
        notebook=log_notebook("search_architecture"),
    params:
        parameters=lambda wc, input, output: stage_parameters("search_architecture", wc, input, output, **search_architecture_parameters(wc)),
        settings=lambda wc: settings(search_architecture_parameters(wc)),
    wildcard_constraints:
        method="|".join(E2NAS_METHODS + BASELINE_METHODS),
        seed=r"\d+",
    resources:
        **resources("search_architecture"),
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
