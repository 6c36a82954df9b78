# Stage 1: the cells of the search space as graphs (every NB201 cell; a seeded DARTS sample).


def build_graphs_parameters(wc):
    # Only the sampled space takes the section: editing it reruns no NB201 job.
    return {"space": wc.space, **({"graphs": section("graphs")} if wc.space == "darts" else {})}


rule build_graphs:
    input:
        notebook=notebook("01_graph_dataset"),
        code=lambda wc: space_sources(wc.space, "spaces/__init__.py", "spaces/nb201.py", "graphs.py", "tracking.py", darts="space"),
    output:
        graphs=f"{RESULTS}/graphs/{{space}}.pt",
        summary=f"{RESULTS}/graphs/{{space}}.json",
    log:
        notebook=log_notebook("build_graphs", "{space}"),
    params:
        yaml=lambda wc, input, output: stage_yaml(
            "build_graphs", log_notebook("build_graphs", "{space}"), wc, input, output, {"space": wc.space},
            **build_graphs_parameters(wc),
        ),
        settings=lambda wc: settings(build_graphs_parameters(wc)),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=lambda wc, attempt: 15 * attempt,
        cpus_per_task=lambda wc, threads: threads,
    conda:
        CONDA_ENV
    shell:
        NOTEBOOK_SHELL
