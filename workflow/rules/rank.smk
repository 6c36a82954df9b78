# Stage 6: how well the warmed-up and the searched supernets rank cells (spaces with table accuracies).


def rank_supernet_parameters(wc):
    return {"space": wc.space, "dataset": wc.dataset, "seed": int(wc.seed), "ranking": section("ranking"),
            "methods": list(config["methods"])}


rule rank_supernet:
    input:
        unpack(get_rank_inputs),
    output:
        ranking=ranking_path("{dataset}", "{space}", "{seed}"),
    log:
        notebook=log_notebook("rank_supernet", "{dataset}/{space}/seed{seed}"),
    params:
        parameters=lambda wc, input, output: stage_parameters(
            "rank_supernet", log_notebook("rank_supernet", "{dataset}/{space}/seed{seed}"), wc, input, output,
            {"space": wc.space, "dataset": wc.dataset, "seed": wc.seed}, **rank_supernet_parameters(wc),
        ),
        settings=lambda wc: settings(rank_supernet_parameters(wc)),
    wildcard_constraints:
        seed=r"\d+",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=lambda wc, attempt: 60 * attempt,
        cpus_per_task=lambda wc, threads: threads,
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
