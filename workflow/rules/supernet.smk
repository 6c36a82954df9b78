# Stage 3: warm up the weight-sharing supernet on uniformly sampled single paths.


def warmup_supernet_parameters(wc):
    return {
        "space": wc.space, "dataset": wc.dataset, "seed": int(wc.seed),
        "data": section("data"), "supernet": section("supernet"), "warmup": section("warmup"),
        "checkpoint": checkpoint_path("warmup_supernet", wc),
    }


rule warmup_supernet:
    input:
        notebook=notebook_code("03_supernet_warmup"),
        code=lambda wc: code("03_supernet_warmup", wc.space),
    output:
        **outputs("warmup_supernet"),
    log:
        notebook=log_notebook("warmup_supernet"),
    params:
        notebook=notebook("03_supernet_warmup"),
        parameters=lambda wc, input, output: stage_parameters("warmup_supernet", wc, input, output, **warmup_supernet_parameters(wc)),
        settings=lambda wc: settings(warmup_supernet_parameters(wc)),
    wildcard_constraints:
        seed=r"\d+",
    resources:
        **resources("warmup_supernet"),
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
