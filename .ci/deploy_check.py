"""Cross-checks of deploy/ that no schema expresses (run by .ci/deploy, in its venv).

  python deploy_check.py k8s FILE OUT_DIR    the Kubernetes manifest; writes the ConfigMap's
                                             openclick.toml and the Secret's Kafka
                                             client.properties to OUT_DIR for `check-config`
  python deploy_check.py servicemonitor FILE the ServiceMonitor against prometheus-operator's
                                             models (cloudcoil, generated from its CRDs)
  python deploy_check.py compose FILE        the compose file

Each check prints what it checked and exits 1 with the list of problems.
"""

import ipaddress
import posixpath
import sys
import tomllib

import yaml

problems = []


def check(ok, msg):
    if not ok:
        problems.append(msg)


def under(path, mount):
    return path == mount or path.startswith(mount.rstrip("/") + "/")


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def volume_files(volume, defined):
    """Paths a volume provides (relative to its mount), or None if it is writable scratch."""
    if "emptyDir" in volume:
        return None
    files = set()

    def from_items(items, keys):
        if items:
            files.update(i["path"] for i in items)
        else:
            files.update(keys)

    if "configMap" in volume:
        obj = defined.get(("ConfigMap", volume["configMap"]["name"]))
        check(obj is not None, f"volume {volume['name']}: ConfigMap not defined")
        from_items(volume["configMap"].get("items"), (obj or {}).get("data", {}).keys())
    if "secret" in volume:
        name = volume["secret"]["secretName"]
        obj = defined.get(("Secret", name))
        keys = (obj or {}).get("stringData", {}).keys() | (obj or {}).get("data", {}).keys()
        if obj is None:
            # Created outside this file (the TLS certificate): a kubernetes.io/tls Secret.
            keys = {"tls.crt", "tls.key"}
        from_items(volume["secret"].get("items"), keys)
    for src in volume.get("projected", {}).get("sources", []):
        s = src.get("secret")
        if s:
            obj = defined.get(("Secret", s["name"]))
            check(obj is not None, f"projected Secret {s['name']} not defined")
            keys = (obj or {}).get("stringData", {}).keys() | (obj or {}).get("data", {}).keys()
            for i in s.get("items", []):
                check(i["key"] in keys, f"Secret {s['name']} has no key {i['key']}")
            from_items(s.get("items"), keys)
    return files


def k8s(path, out_dir):
    docs = load_all(path)
    defined = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    kinds = [d["kind"] for d in docs]
    for kind in ["Deployment", "Service", "ConfigMap", "Secret", "ServiceMonitor",
                 "NetworkPolicy", "HorizontalPodAutoscaler", "PodDisruptionBudget"]:
        check(kind in kinds, f"no {kind}")
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = dep["spec"]["template"]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    check(labels_match(dep["spec"]["selector"]["matchLabels"], pod_labels), "Deployment selector")
    (c,) = pod["containers"]

    # Confinement.
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True, "runAsNonRoot")
    check(isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] > 0, "numeric runAsUser")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccomp RuntimeDefault")
    check(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    check("ALL" in csc.get("capabilities", {}).get("drop", []), "capabilities drop ALL")
    check(c["resources"]["requests"].get("cpu"), "a CPU request (the HPA needs one)")
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"]:
        check(probe in c, f"no {probe}")

    # Ports named by probes and Services exist on the container.
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"]:
        port = c.get(probe, {}).get("httpGet", {}).get("port")
        check(port in ports, f"{probe} port {port}")

    # Mounts: every file a variable names is provided by the volume mounted there; the only
    # writable mounts are emptyDirs.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = []
    for m in c["volumeMounts"]:
        v = volumes.get(m["name"])
        check(v is not None, f"mount of undefined volume {m['name']}")
        if v is None:
            continue
        files = volume_files(v, defined)
        check(files is None or m.get("readOnly") is True,
              f"mount {m['mountPath']}: not an emptyDir, should be readOnly")
        check("subPath" not in m, f"mount {m['mountPath']}: subPath mounts miss Secret updates")
        mounts.append((m["mountPath"], files))
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    check(not any("valueFrom" in e for e in c.get("env", [])) and "envFrom" not in c,
          "secrets come from files, not environment values")

    def provided(file):
        for mount, files in mounts:
            if files is not None and under(file, mount):
                return posixpath.relpath(file, mount) in files
        return False

    file_vars = [k for k in env if k.endswith("_FILE")] + ["OPENCLICK_CONFIG"]
    for k in file_vars:
        check(k in env and provided(env[k]), f"{k}={env.get(k)} is not a mounted file")
    cert_dir = env.get("OPENCLICK_TLS_CERT_DIR")
    if cert_dir:
        certs = [m for m, files in mounts
                 if files is not None and posixpath.dirname(m) == cert_dir.rstrip("/")]
        check(certs, f"OPENCLICK_TLS_CERT_DIR={cert_dir}: no certificate mounted under it")
        for m, files in mounts:
            if m in certs:
                check({"tls.crt", "tls.key"} <= files, f"{m}: no tls.crt and tls.key")

    # The config file: TOML, no key also set by a variable (which would silently win).
    cm_name = next(v["configMap"]["name"] for v in volumes.values() if "configMap" in v)
    toml_text = defined[("ConfigMap", cm_name)]["data"][posixpath.basename(env["OPENCLICK_CONFIG"])]
    cfg = tomllib.loads(toml_text)
    for key in cfg:
        var = "OPENCLICK_" + key.upper().replace("-", "_")
        check(var not in env, f"{key} is in the config file and in {var}")
    for net in cfg.get("trusted-proxies", []):
        n = ipaddress.ip_network(net)
        check(n.prefixlen >= 16 if n.version == 4 else n.prefixlen >= 48,
              f"trusted proxy network {net} is wide")
    data_dir = cfg.get("data-dir") or env.get("OPENCLICK_DATA_DIR")
    check(any(files is None and under(data_dir, m) for m, files in mounts),
          f"data-dir {data_dir} (the spool) is not on an emptyDir")
    listen = {k: int(cfg[k].rsplit(":", 1)[1]) for k in ["listen", "https-listen", "admin-listen"]
              if k in cfg}
    check(listen.get("listen") == ports.get("http"), "listen port is the http containerPort")
    check(listen.get("https-listen") == ports.get("https"), "https-listen is the https port")
    check(listen.get("admin-listen") == ports.get("admin"), "admin-listen is the admin port")
    with open(posixpath.join(out_dir, "openclick.toml"), "w") as f:
        f.write(toml_text)
    props_path = env.get("OPENCLICK_KAFKA_PROPERTIES_FILE")
    props = None
    for m in c["volumeMounts"]:
        for src in volumes[m["name"]].get("projected", {}).get("sources", []):
            for item in src.get("secret", {}).get("items", []):
                if posixpath.join(m["mountPath"], item["path"]) == props_path:
                    props = defined[("Secret", src["secret"]["name"])]["stringData"][item["key"]]
    check(props is not None, f"OPENCLICK_KAFKA_PROPERTIES_FILE={props_path}: no Secret item")
    with open(posixpath.join(out_dir, "client.properties"), "w") as f:
        f.write(props or "")
    # Files the properties name (the CA) are mounted too.
    for line in (props or "").splitlines():
        k, _, v = line.partition("=")
        if k.strip().endswith(".location"):
            check(provided(v.strip()), f"{k.strip()}={v.strip()} is not a mounted file")

    # Apple's egress list: the file the edge reads sits on a read-only claim that a CronJob
    # mounts writable and writes to, at the same path within the claim; the job's pods are not
    # the edge's (no Service or policy of the edge selects them).
    egress = env.get("OPENCLICK_APPLE_EGRESS_RANGES")
    if egress:
        claim = rel = None
        for m in c["volumeMounts"]:
            v = volumes.get(m["name"], {})
            if "persistentVolumeClaim" in v and under(egress, m["mountPath"]):
                check(m.get("readOnly") is True, f"{m['mountPath']}: the edge mounts it read-only")
                claim = v["persistentVolumeClaim"]["claimName"]
                rel = posixpath.relpath(egress, m["mountPath"])
        check(claim is not None, f"OPENCLICK_APPLE_EGRESS_RANGES={egress}: not on a mounted claim")
        check(("PersistentVolumeClaim", claim) in defined, f"claim {claim} not defined")
        writers = []
        for cj in (d for d in docs if d["kind"] == "CronJob"):
            jpod = cj["spec"]["jobTemplate"]["spec"]["template"]
            jvols = {v["name"]: v for v in jpod["spec"]["volumes"]}
            check(not labels_match(dep["spec"]["selector"]["matchLabels"],
                                   jpod["metadata"].get("labels", {})),
                  f"CronJob {cj['metadata']['name']}: its pods match the edge's selector")
            for jc in jpod["spec"]["containers"]:
                jenv = {e["name"]: e.get("value") for e in jc.get("env", [])}
                for m in jc.get("volumeMounts", []):
                    v = jvols.get(m["name"], {})
                    if (v.get("persistentVolumeClaim", {}).get("claimName") == claim
                            and not m.get("readOnly")
                            and jenv.get("EGRESS_FILE") == posixpath.join(m["mountPath"], rel)):
                        writers.append(cj["metadata"]["name"])
        check(writers, f"no CronJob writes {rel} on claim {claim} (EGRESS_FILE)")

    # Services select the pods; the admin port is only on the admin Service, never public.
    services = [d for d in docs if d["kind"] == "Service"]
    for s in services:
        check(labels_match(s["spec"]["selector"], pod_labels), f"Service {s['metadata']['name']}")
        for p in s["spec"]["ports"]:
            check(p["targetPort"] in ports, f"Service {s['metadata']['name']} port {p}")
        admin = any(p["targetPort"] == "admin" for p in s["spec"]["ports"])
        public = any(p["targetPort"] in ("http", "https") for p in s["spec"]["ports"])
        check(not (admin and public), f"Service {s['metadata']['name']} mixes admin and public")
        if admin:
            check(s["spec"].get("type", "ClusterIP") == "ClusterIP",
                  f"admin Service {s['metadata']['name']} is not ClusterIP")

    # The ServiceMonitor selects the admin Service and scrapes its admin port.
    (sm,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    scraped = [s for s in services
               if labels_match(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
    check(len(scraped) == 1, f"ServiceMonitor selects {len(scraped)} Services")
    for s in scraped:
        names = {p["name"] for p in s["spec"]["ports"]}
        for e in sm["spec"]["endpoints"]:
            check(e["port"] in names and e["port"] == "admin", f"ServiceMonitor port {e['port']}")
            check(e.get("path", "/metrics") == "/metrics", "ServiceMonitor path")

    # NetworkPolicy: public ports from anywhere, the admin port only from selected peers
    # (the monitoring namespace among them).
    (np,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    check(labels_match(np["spec"]["podSelector"]["matchLabels"], pod_labels), "NetworkPolicy pods")
    check("Ingress" in np["spec"]["policyTypes"], "NetworkPolicy is not an Ingress policy")
    open_ports, admin_from = set(), []
    for rule in np["spec"]["ingress"]:
        rule_ports = {p["port"] for p in rule.get("ports", [])}
        if not rule.get("from"):
            open_ports |= rule_ports
        elif "admin" in rule_ports or ports["admin"] in rule_ports:
            admin_from += rule["from"]
    check({"http", "https"} <= open_ports, f"public ports open to all: {open_ports}")
    check("admin" not in open_ports and ports["admin"] not in open_ports, "admin port open to all")
    check(any(f.get("namespaceSelector", {}).get("matchLabels", {})
              .get("kubernetes.io/metadata.name") == "monitoring" for f in admin_from),
          "admin port not admitted from the monitoring namespace")
    check(all(f.get("namespaceSelector", {}) != {} or "podSelector" in f for f in admin_from)
          and all("ipBlock" not in f for f in admin_from),
          "admin port admitted from every namespace or an address block")

    # Autoscaling owns the replica count, within the disruption budget.
    (hpa,) = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    check(hpa["apiVersion"] == "autoscaling/v2", "HPA autoscaling/v2")
    ref = hpa["spec"]["scaleTargetRef"]
    check((ref["kind"], ref["name"]) == ("Deployment", dep["metadata"]["name"]), "HPA target")
    check(any(m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"]["metrics"]),
          "HPA on CPU")
    check("replicas" not in dep["spec"], "Deployment replicas would fight the HPA")
    (pdb,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    check(pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"],
          "PDB minAvailable leaves no disruption at minReplicas")
    check(labels_match(pdb["spec"]["selector"]["matchLabels"], pod_labels), "PDB selector")
    print(f"k8s: {len(docs)} resources cross-checked ({', '.join(sorted(set(kinds)))})")


def servicemonitor(path):
    from cloudcoil.models.prometheus_operator import v1

    for doc in load_all(path):
        if doc["kind"] != "ServiceMonitor":
            continue
        # Validates types and the CRD's patterns; unknown fields are ignored by the models,
        # so a round trip that loses a field means the field is not in the CRD.
        model = v1.ServiceMonitor.model_validate(doc)
        back = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
        check(back == doc, f"ServiceMonitor fields unknown to the CRD: {doc} != {back}")
        if back == doc:
            print(f"servicemonitor: {doc['metadata']['name']} valid against the "
                  "prometheus-operator v1 models")


def compose(path):
    (doc,) = load_all(path)
    svc = doc["services"]["openclick"]
    env = svc["environment"]
    admin_port = int(env["OPENCLICK_ADMIN_LISTEN"].rsplit(":", 1)[1])
    public_port = int(env["OPENCLICK_LISTEN"].rsplit(":", 1)[1])
    published = {}
    for p in svc.get("ports", []):
        if isinstance(p, dict):
            host_ip, target = p.get("host_ip", ""), int(p["target"])
        else:
            parts = str(p).rsplit("/", 1)[0].split(":")
            # [HOST_IP:]HOST_PORT:CONTAINER_PORT, or just CONTAINER_PORT.
            target = int(parts[-1])
            host_ip = ":".join(parts[:-2]) if len(parts) > 2 else ""
        published.setdefault(target, []).append(host_ip.strip("[]"))
    check(admin_port in published, "admin port not published at all")
    for host_ip in published.get(admin_port, []):
        check(host_ip and ipaddress.ip_address(host_ip).is_loopback,
              f"admin port {admin_port} published on {host_ip or 'every interface'}")
    check(public_port in published, "public port not published")
    secrets = set(svc.get("secrets", []))
    for k, v in env.items():
        if k.endswith("_FILE"):
            name = posixpath.basename(v)
            check(posixpath.dirname(v) == "/run/secrets" and name in secrets
                  and name in doc.get("secrets", {}), f"{k}={v} is not a mounted secret")
    check(not any(k in env for k in ["OPENCLICK_KEYS", "OPENCLICK_ADMIN_TOKEN"]),
          "secrets as environment values")
    print(f"compose: admin port {admin_port} on loopback only, public port {public_port} "
          f"published, {len(secrets)} secrets as files")


if __name__ == "__main__":
    what = sys.argv[1]
    {"k8s": k8s, "servicemonitor": servicemonitor, "compose": compose}[what](*sys.argv[2:])
    if problems:
        print(f"{what}: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        sys.exit(1)
