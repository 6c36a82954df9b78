# Stage 4: architecture search on the warmed-up supernet (E2NAS, its ablations, baselines).


def search_architecture_parameters(wc):
    return {
        "space": wc.space, "dataset": wc.dataset, "method": wc.method, "seed": int(wc.seed), "search": section("search"),
        "checkpoint": checkpoint_path("search_architecture", f"{wc.dataset}/{wc.space}/{wc.method}/seed{wc.seed}"),
    }


rule search_architecture:
    input:
        unpack(get_search_inputs),
    output:
        result=search_result("{dataset}", "{space}", "{method}", "{seed}"),
        supernet=searched_supernet("{dataset}", "{space}", "{method}", "{seed}"),
    log:
        notebook=log_notebook("search_architecture", "{dataset}/{space}/{method}/seed{seed}"),
    params:
        parameters=lambda wc, input, output: stage_parameters(
            "search_architecture", log_notebook("search_architecture", "{dataset}/{space}/{method}/seed{seed}"),
            wc, input, output,
            {"space": wc.space, "dataset": wc.dataset, "method": wc.method, "seed": wc.seed},
            **search_architecture_parameters(wc),
        ),
        settings=lambda wc: settings(search_architecture_parameters(wc)),
    wildcard_constraints:
        method="|".join(E2NAS_METHODS + BASELINE_METHODS),
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
