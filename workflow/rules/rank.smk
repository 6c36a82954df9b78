# Stage 6: how well the warmed-up and the searched supernets rank cells (spaces with table accuracies).


def rank_supernet_parameters(wc):
    return {"space": wc.space, "dataset": wc.dataset, "seed": int(wc.seed), "ranking": section("ranking"),
            "methods": list(config["methods"])}


rule rank_supernet:
    input:
        unpack(get_rank_inputs),
    output:
        **outputs("rank_supernet"),
    log:
        notebook=log_notebook("rank_supernet"),
    params:
        notebook=notebook("06_rank_supernet"),
        parameters=lambda wc, input, output: stage_parameters("rank_supernet", wc, input, output, **rank_supernet_parameters(wc)),
        settings=lambda wc: settings(rank_supernet_parameters(wc)),
    wildcard_constraints:
        seed=r"\d+",
    resources:
        **resources("rank_supernet"),
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
