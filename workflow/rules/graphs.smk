# Stage 1: every cell of the search space as a graph.


rule build_graphs:
    input:
        notebook=notebook("01_graph_dataset"),
        code=sources("spaces/__init__.py", "spaces/nb201.py", "graphs.py", "tracking.py"),
    output:
        graphs=f"{RESULTS}/graphs/{{space}}.pt",
        summary=f"{RESULTS}/graphs/{{space}}.json",
    log:
        notebook=log_notebook("build_graphs", "{space}"),
    params:
        yaml=lambda wc, input, output: stage_yaml(
            "build_graphs", log_notebook("build_graphs", "{space}"), wc, input, output, {"space": wc.space}, space=wc.space
        ),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=lambda wc, attempt: 15 * attempt,
        cpus_per_task=lambda wc, threads: threads,
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
