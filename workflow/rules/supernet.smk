# Stage 3: warm up the weight-sharing supernet on uniformly sampled single paths.


def warmup_supernet_parameters(wc):
    return {
        "space": wc.space, "dataset": wc.dataset, "seed": int(wc.seed),
        "data": section("data"), "supernet": section("supernet"), "warmup": section("warmup"),
        "checkpoint": checkpoint_path("warmup_supernet", f"{wc.dataset}/{wc.space}/seed{wc.seed}"),
    }


rule warmup_supernet:
    input:
        notebook=notebook("03_supernet_warmup"),
        code=lambda wc: code("03_supernet_warmup", wc.space),
    output:
        warmup=warmup_path("{dataset}", "{space}", "{seed}"),
    log:
        notebook=log_notebook("warmup_supernet", "{dataset}/{space}/seed{seed}"),
    params:
        parameters=lambda wc, input, output: stage_parameters(
            "warmup_supernet", log_notebook("warmup_supernet", "{dataset}/{space}/seed{seed}"), wc, input, output,
            {"space": wc.space, "dataset": wc.dataset, "seed": wc.seed}, **warmup_supernet_parameters(wc),
        ),
        settings=lambda wc: settings(warmup_supernet_parameters(wc)),
    wildcard_constraints:
        seed=r"\d+",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=lambda wc, attempt: 120 * attempt,
        cpus_per_task=lambda wc, threads: threads,
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
