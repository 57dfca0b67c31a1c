#!/usr/bin/env python3
"""Compare Cumulo's reading of SkyPilot task files with SkyPilot's own, field by field.

    python scripts/skypilot-compare.py [--cumulo target/debug/cumulo] FILE_OR_DIR...

Run it with a Python that has SkyPilot installed (`pip install skypilot==0.14.1`; SkyPilot reads
instance types from its catalogs under ~/.sky/catalogs/v8, so files naming an instance type of a
cloud whose catalog is absent are reported as "skypilot cannot load" and skipped). For every file
SkyPilot loads, `cumulo validate -o json` must accept it with, per task, the same node count and
the same set of resource options: accelerator name and count, cloud, region, zone and spot choice,
in the same order where SkyPilot keeps a preference order (`ordered:`, an accelerator list), and the
same `file_mounts` destinations (envs filled in; a list of files may become one mount per file).
Per task it also compares vCPUs and memory per resource option as SkyPilot keeps them (`4` is
exactly 4, `4+` at least 4; memory in GB; an option that leaves them to SkyPilot's default is not
compared), and the service's replica count (`replicas`, else `replica_policy.min_replicas`) with
the job's. Fields `cumulo validate -o json` does not carry, because Cumulo does not apply them
(`disk_size`, `ports`, a service's readiness probe path and `target_qps_per_replica`), must each
be named in its warnings when SkyPilot's reading sets them: nothing dropped in silence.
Accelerator names are compared as written: SkyPilot keeps a name as the file writes it when it
loads the file (`a100`, `Gaudi`), and `cumulo validate -o json` gives that spelling in
`accelerators.names` beside the model it places by (`selector`: `A100`, `Gaudi HL-205`);
`--launch-names` compares the selector with the name SkyPilot settles on to launch instead.
Prints a line per file (`same`, `DIFF`, `cumulo refuses`, `skypilot cannot load`) and the
differences, then a summary; exits 1 when any file SkyPilot loads is refused or read differently.

Environment variables a file leaves empty (`HF_TOKEN:` with no value) are given "" on both sides,
as `--env HF_TOKEN=""` would. Nothing here talks to a cloud; SkyPilot's usage collection is off.
"""

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("SKYPILOT_DISABLE_USAGE_COLLECTION", "1")

import yaml  # noqa: E402  (SkyPilot depends on PyYAML)


def task_files(paths):
    for path in paths:
        if os.path.isdir(path):
            for root, _, names in os.walk(path):
                for name in sorted(names):
                    if name.endswith((".yaml", ".yml")):
                        yield os.path.join(root, name)
        else:
            yield path


def empty_envs(path):
    """Names of env vars any document leaves without a value (SkyPilot refuses them unset)."""
    names = set()
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if isinstance(doc, dict) and isinstance(doc.get("envs"), dict):
                names |= {k for k, v in doc["envs"].items() if v is None}
    return sorted(names)


def sky_tasks(path, envs):
    from sky.utils import dag_utils

    overrides = [(name, "") for name in envs]
    # As `sky launch` decides: a job group iff the first document says `execution: parallel`.
    if dag_utils.is_job_group_yaml(path):
        group = dag_utils.load_job_group_from_yaml(path, env_overrides=overrides)
        return list(group.tasks)
    return list(dag_utils.load_chain_dag_from_yaml(path, env_overrides=overrides).tasks)


LAUNCH_NAMES = False


def sky_option(resources):
    if LAUNCH_NAMES:
        # What `Resources.validate()` does before a launch: a partial name found in one catalog
        # name becomes that name (`Gaudi` -> `Gaudi HL-205`). Loading alone keeps it as written.
        try:
            resources._try_canonicalize_accelerators()
        except Exception:  # an ambiguous name: SkyPilot refuses it at launch; keep the loaded one
            pass
    accels = resources.accelerators or {}
    # Loaded, SkyPilot keeps names as written (`a100`, `Gaudi`); Cumulo reports those as `names`.
    spell = (lambda n: n.lower()) if LAUNCH_NAMES else (lambda n: n)
    cloud = str(resources.cloud).lower() if resources.cloud is not None else None
    region = resources.region
    if cloud == "ssh" and region and region.startswith("ssh-"):
        # SkyPilot keeps SSH node pool `ssh/POOL` as the Kubernetes context `ssh-POOL` and shows
        # it as POOL again (`sky/utils/infra_utils.py`); the pool's name is the location.
        region = region[len("ssh-"):]
    if not accels:
        return [(None, 0.0, cloud, region, resources.zone, bool(resources.use_spot))]
    return [
        (spell(name), float(count), cloud, region, resources.zone, bool(resources.use_spot))
        for name, count in accels.items()
    ]


def amount(text):
    """SkyPilot's `4` / `4+` / `0.5` (vCPUs or GB) as (number, at_least), or None when unset."""
    if text is None:
        return None
    text = str(text).strip()
    at_least = text.endswith("+")
    return (round(float(text.rstrip("+")), 3), at_least)


def sky_shape(resources):
    return (amount(resources.cpus), amount(resources.memory))


def sky_unapplied(task, resources):
    """The fields SkyPilot's reading sets that Cumulo must name as not applied."""
    from sky import resources as sky_resources

    fields = set()
    default_disk = getattr(sky_resources, "_DEFAULT_DISK_SIZE_GB", 256)
    if any(r.disk_size is not None and r.disk_size != default_disk for r in resources):
        fields.add("disk_size")
    if any(r.ports for r in resources):
        fields.add("ports")
    service = getattr(task, "service", None)
    if service is not None:
        # SkyPilot's readiness path defaults to `/`; any probe at all is not applied by Cumulo.
        if getattr(service, "readiness_path", "/") not in (None, "/"):
            fields.add("readiness_probe")
        if getattr(service, "target_qps_per_replica", None) is not None:
            fields.add("target_qps_per_replica")
    return fields


def sky_replicas(task):
    service = getattr(task, "service", None)
    if service is None:
        return None
    return getattr(service, "min_replicas", None)


def sky_reading(task):
    res = task.resources
    options = set()
    sequence = []
    shapes = set()
    listed = list(res) if isinstance(res, (list, set, tuple)) else [res]
    for r in listed:
        options.update(sky_option(r))
        sequence.extend(o for o in sky_option(r) if o not in sequence)
        shapes.add(sky_shape(r))
    # SkyPilot keeps `ordered:` (and an accelerator list) as a list: a preference order.
    ordered = isinstance(res, list) and len(sequence) > 1
    mounts = set(task.file_mounts or {}) | set(task.storage_mounts or {})
    return {
        "num_nodes": task.num_nodes,
        "options": options,
        "order": sequence if ordered else None,
        "mounts": {m.rstrip("/") or "/" for m in mounts},
        "shapes": shapes,
        "replicas": sky_replicas(task),
        "unapplied": sky_unapplied(task, listed),
    }


def cumulo_option(option):
    infra = option.get("infra") or {}
    cloud = infra.get("provider")
    spot = bool(option.get("use_spot"))
    acc = option.get("accelerators")
    if not acc:
        return [(None, 0.0, cloud, infra.get("region"), infra.get("zone"), spot)]
    count = acc["per_node"] / 1000.0
    sel = acc["selector"]
    names = sel.get("models") or ([sel["named"]] if "named" in sel else [f">={sel.get('min_memory_gb')}GB"])
    if LAUNCH_NAMES:
        # The canonical model Cumulo places by, against SkyPilot's launch-time name.
        names = [n.lower() for n in names]
    elif len(acc.get("names") or []) == len(names):
        # The names as the file wrote them, as SkyPilot keeps them when it loads the file.
        names = acc["names"]
    else:
        # No written name (an instance type's GPUs): SkyPilot gives the catalog's name.
        names = list(names)
    return [(n, count, cloud, infra.get("region"), infra.get("zone"), spot) for n in names]


def cumulo_shape(option):
    cpus = (round(option.get("cpus_milli", 0) / 1000.0, 3), bool(option.get("cpus_or_more")))
    memory = (round(option.get("memory_mib", 0) / 1024.0, 3), bool(option.get("memory_or_more")))
    return (cpus, memory)


def cumulo_reading(job):
    options = set()
    sequence = []
    for option in job["resources"]:
        options.update(cumulo_option(option))
        sequence.extend(o for o in cumulo_option(option) if o not in sequence)
    ordered = bool(job.get("ordered")) and len(sequence) > 1
    mounts = {m.rstrip("/") or "/" for m in job.get("file_mounts") or {}}
    return {
        "num_nodes": job["num_nodes"],
        "options": options,
        "order": sequence if ordered else None,
        "mounts": mounts,
        "shapes": {cumulo_shape(o) for o in job["resources"]},
        "replicas": job.get("replicas"),
    }


def shape_diffs(i, want, got):
    """vCPUs and memory: each of SkyPilot's options that sets one must be among Cumulo's."""
    diffs = []
    for what, k in (("cpus", 0), ("memory", 1)):
        wanted = {s[k] for s in want["shapes"] if s[k] is not None}
        if not wanted:
            continue
        have = {s[k] for s in got["shapes"]}
        show = lambda v: f"{v[0]:g}{'+' if v[1] else ''}"  # noqa: E731
        for v in sorted(wanted - have):
            diffs.append(f"task {i}: {what} skypilot {show(v)} cumulo {', '.join(show(h) for h in sorted(have))}")
    return diffs


def under(path, folder):
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def cumulo_jobs(cumulo, path, envs):
    out = subprocess.run([cumulo, "validate", "-o", "json", path], capture_output=True, text=True)
    try:
        docs = json.loads(out.stdout)
    except json.JSONDecodeError:
        return None, out.stderr.strip() or out.stdout.strip(), ""
    errors = [e for d in docs if not d["ok"] for e in d.get("errors", [])]
    if errors:
        return None, "; ".join(f"{e.get('path', '')}: {e.get('message', e)}" for e in errors), ""
    # A file's warnings come on its first entry; the text is searched for the fields they name.
    warnings = " ".join(f"{w.get('path', '')} {w.get('message', '')}" for d in docs for w in d.get("warnings", []))
    return [d["job"] for d in docs], None, warnings


def compare(path, cumulo):
    try:
        envs = empty_envs(path)
        # Reading accelerators may consult the catalogs (instance_type), so it belongs here too.
        wants = [sky_reading(task) for task in sky_tasks(path, envs)]
    except Exception as exc:  # SkyPilot's own refusal: not part of the corpus
        return "skypilot cannot load", [f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"]
    jobs, error, warnings = cumulo_jobs(cumulo, path, envs)
    if jobs is None:
        return "cumulo refuses", [error]
    if len(jobs) != len(wants):
        return "DIFF", [f"{len(wants)} SkyPilot task(s), {len(jobs)} Cumulo job(s)"]
    diffs = []
    for i, (want, job) in enumerate(zip(wants, jobs)):
        got = cumulo_reading(job)
        if want["num_nodes"] != got["num_nodes"]:
            diffs.append(f"task {i}: num_nodes skypilot {want['num_nodes']} cumulo {got['num_nodes']}")
        for option in sorted(want["options"] - got["options"], key=str):
            diffs.append(f"task {i}: only skypilot {option}")
        for option in sorted(got["options"] - want["options"], key=str):
            diffs.append(f"task {i}: only cumulo   {option}")
        # A list of files under one destination is one SkyPilot mount and one Cumulo mount per file.
        for mount in sorted(m for m in want["mounts"] if not any(under(g, m) for g in got["mounts"])):
            diffs.append(f"task {i}: file_mounts {mount}: dropped by cumulo")
        for mount in sorted(g for g in got["mounts"] if not any(under(g, m) for m in want["mounts"])):
            diffs.append(f"task {i}: file_mounts {mount}: only cumulo")
        diffs.extend(shape_diffs(i, want, got))
        # SkyPilot scales a service to zero; Cumulo runs one replica and must say so.
        scale_to_zero = want["replicas"] == 0 and got["replicas"] == 1 and "min_replicas 0" in warnings
        if want["replicas"] is not None and want["replicas"] != got["replicas"] and not scale_to_zero:
            diffs.append(f"task {i}: service replicas skypilot {want['replicas']} cumulo {got['replicas']}")
        for name in sorted(want["unapplied"]):
            if name not in warnings:
                diffs.append(f"task {i}: {name}: set in skypilot, not applied by cumulo and not warned")
        if want["options"] == got["options"] and want["order"] != got["order"]:
            diffs.append(f"task {i}: preference order skypilot {want['order']} cumulo {got['order']}")
    return ("DIFF" if diffs else "same"), diffs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cumulo", default="target/debug/cumulo")
    parser.add_argument(
        "--launch-names",
        action="store_true",
        help="compare accelerator names as SkyPilot canonicalises them for a launch, not as loaded",
    )
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    global LAUNCH_NAMES
    LAUNCH_NAMES = args.launch_names
    counts = {}
    for path in task_files(args.paths):
        verdict, details = compare(path, args.cumulo)
        counts[verdict] = counts.get(verdict, 0) + 1
        print(f"{verdict:22} {path}")
        for line in details:
            print(f"    {line}")
    print("summary: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 1 if counts.get("DIFF") or counts.get("cumulo refuses") else 0


if __name__ == "__main__":
    sys.exit(main())
