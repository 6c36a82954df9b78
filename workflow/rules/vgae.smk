# Stage 2: the VGAE that maps cells injectively into the continuous ("equivalent") space.


def pretrain_vgae_parameters(wc):
    return {"space": wc.space, "vgae": section("vgae")}


rule pretrain_vgae:
    input:
        notebook=notebook("02_vgae_pretrain"),
        graphs=f"{RESULTS}/graphs/{{space}}.pt",
        code=lambda wc: code("02_vgae_pretrain", wc.space),
        tables=lambda wc: nb201_table_files(wc.space),
    output:
        model=f"{RESULTS}/vgae/{{space}}/model.pt",
        metrics=f"{RESULTS}/vgae/{{space}}/metrics.json",
    log:
        notebook=log_notebook("pretrain_vgae", "{space}"),
    params:
        parameters=lambda wc, input, output: stage_parameters(
            "pretrain_vgae", log_notebook("pretrain_vgae", "{space}"), wc, input, output,
            {"space": wc.space}, **pretrain_vgae_parameters(wc),
        ),
        settings=lambda wc: settings(pretrain_vgae_parameters(wc)),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=lambda wc, attempt: 60 * attempt,
        cpus_per_task=lambda wc, threads: threads,
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
