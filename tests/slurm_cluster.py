"""A real one-node Slurm cluster on localhost, for the sbatch tests.

Debian's ``slurmctld``, ``slurmd`` and ``munge`` (installed by ``.ci/run``), started
as root with a private munged, private state/spool/log directories and free ports,
so it neither needs nor touches ``/etc/slurm``, ``/etc/munge`` or ``/run/munge``
and two test sessions on one host do not collide. Clients find it through
``SLURM_CONF`` (:meth:`Cluster.env`); jobs inherit that variable.

    cluster = Cluster(tmpdir); cluster.up()   # about 0.1 s once installed (0.5 s here)
    ...  subprocess.run(["sbatch", ...], env=cluster.env())
    cluster.down()                            # cancels jobs, stops the daemons

The configuration is the one measured in ``../shared/docs/slurm-testing.md``:
no cgroups (``proctrack/linuxproc``, ``task/none``), memory not consumable,
``batch_sched_delay=0``, ``kill_invalid_depend`` (a failed parent cancels its
dependents instead of leaving them pending forever), no accounting (finished
jobs stay visible to ``scontrol``/``squeue`` for an hour instead). Two changes for
requeue tests: ``cred_expire=5`` (a requeued job may start again after about 6 s
instead of 2 minutes; released earlier, slurmd kills it: "Job credential revoked")
and ``sched_interval=1,bf_interval=1`` (it then starts within a second, not at the
next minute's scheduling pass).

``extra_nodes`` adds slurmd daemons on this same host under other node names
(Debian's Slurm is built with multiple-slurmd support), in a partition of their own
with the first node (:attr:`Cluster.multi`), so that multi-node jobs (``--nodes=2``,
``srun -w`` onto the other node) run for real; the default partition keeps the one node.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scontrol", "scancel", "srun", "sinfo")


class ClusterError(RuntimeError):
    pass


def missing_binaries() -> list[str]:
    """The Slurm/munge programs this machine lacks (empty: the cluster can start)."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    return [b for b in BINARIES if shutil.which(b, path=path) is None]


def why_unavailable() -> str | None:
    """A one-line reason the cluster cannot run here, or None."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "Slurm tests need Linux"
    if os.geteuid() != 0:
        return "Slurm tests start slurmctld/slurmd/munged as root; not root here"
    missing = missing_binaries()
    if missing:
        return (
            f"Slurm is not installed ({', '.join(missing)} missing); .ci/run installs it with "
            "`apt-get install --no-install-recommends slurmctld slurmd slurm-client munge`"
        )
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int, name: str) -> bool:
    """``pid`` runs ``name`` and is not a zombie (``kill -0`` succeeds on zombies, and
    some sandboxes' PID 1 reaps daemonized children late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and name.startswith(comm[:15])


class Cluster:
    def __init__(self, root: str | os.PathLike, extra_nodes: int = 0):
        self.root = Path(root).resolve()
        self.host = socket.gethostname().split(".")[0]
        self.nodes = [self.host] + [f"{self.host}x{i}" for i in range(1, extra_nodes + 1)]
        self.conf = self.root / "etc" / "slurm.conf"
        self.partition = "debug"  # the default: the first node only
        self.multi = "multi" if extra_nodes else None  # every node

    # --- paths and environment
    def _d(self, name: str) -> Path:
        return self.root / name

    def env(self, **extra: str) -> dict:
        """The environment for client commands (and, inherited, for jobs)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
        env.update(extra)
        return env

    def run(
        self, *cmd: str, timeout: float = 30, check: bool = True, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env=env or self.env())
        if check and r.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed (rc={r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
        return r

    # --- configuration
    def _node_lines(self) -> str:
        """One NodeName line per node: ``slurmd -C`` (this machine), at 127.0.0.1, each on its own port."""
        r = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise ClusterError(f"slurmd -C failed: {r.stderr.strip()}")
        fields = dict(kv.split("=", 1) for kv in r.stdout.splitlines()[0].split() if "=" in kv)
        fields.pop("NodeName", None)
        hw = " ".join(f"{k}={v}" for k, v in fields.items())
        return "\n".join(
            f"NodeName={n} NodeHostname={self.host} NodeAddr=127.0.0.1 Port={_free_port()} {hw} State=UNKNOWN"
            for n in self.nodes
        )

    def _write_config(self) -> None:
        d = self._d
        for sub in ("etc", "state", "spool", "run", "log", "munge"):
            d(sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        os.chmod(d("munge"), 0o755)  # munge clients need o+x on the socket's directory
        key = d("munge") / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self.ctld_port = _free_port()
        self.conf.write_text(
            f"""\
ClusterName=pipelinetest
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d("munge")}/munge.socket,cred_expire=5
SlurmctldPort={self.ctld_port}
StateSaveLocation={d("state")}
SlurmdSpoolDir={d("spool")}/%n
SlurmctldPidFile={d("run")}/slurmctld.pid
SlurmdPidFile={d("run")}/slurmd-%n.pid
SlurmctldLogFile={d("log")}/slurmctld.log
SlurmdLogFile={d("log")}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
DependencyParameters=kill_invalid_depend
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
{self._node_lines()}
PartitionName={self.partition} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
"""
            + (f"PartitionName={self.multi} Nodes=ALL Default=NO MaxTime=INFINITE State=UP\n" if self.multi else "")
        )

    # --- lifecycle
    def _daemons(self) -> list[tuple[str, str]]:
        """``(pid file stem, program)``, in stopping order."""
        return [(f"slurmd-{n}", "slurmd") for n in self.nodes] + [("slurmctld", "slurmctld"), ("munged", "munged")]

    def _pid(self, stem: str, daemon: str | None = None) -> int | None:
        daemon = daemon or stem
        f = self._d("run") / f"{stem}.pid"
        try:
            pid = int(f.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid, daemon) else None

    def up(self, timeout: float = 60) -> None:
        why = why_unavailable()
        if why:
            raise ClusterError(why)
        self._write_config()
        d = self._d
        env = {**os.environ, "SLURM_CONF": str(self.conf), "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}
        steps = [
            (
                "munged",
                [
                    "munged",
                    f"--key-file={d('munge')}/munge.key",
                    f"--socket={d('munge')}/munge.socket",
                    f"--pid-file={d('run')}/munged.pid",
                    f"--log-file={d('log')}/munged.log",
                    f"--seed-file={d('munge')}/munged.seed",
                    "--force",
                ],
            ),
            ("slurmctld", ["slurmctld", "-f", str(self.conf), "-i"]),
        ] + [(f"slurmd-{n}", ["slurmd", "-f", str(self.conf), "-N", n]) for n in self.nodes]
        for name, cmd in steps:
            if name.startswith("slurmd-"):
                (d("spool") / name.removeprefix("slurmd-")).mkdir(exist_ok=True)
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)
            if r.returncode != 0:
                self.down()
                raise ClusterError(
                    f"{name} did not start (rc={r.returncode}): {r.stderr.strip()}; see {d('log')}/{name}.log"
                )
            self._wait(lambda n=name, exe=cmd[0]: self._pid(n, exe) is not None, 10, f"{name} pid file")
        deadline = time.monotonic() + timeout
        resumed = False
        nodes = ",".join(self.nodes)
        while time.monotonic() < deadline:
            r = self.run("sinfo", "-h", "-N", "-n", nodes, "-o", "%N %T", check=False, timeout=10)
            states = dict(line.split() for line in r.stdout.splitlines() if len(line.split()) == 2)
            if len(states) == len(self.nodes) and set(states.values()) == {"idle"}:
                return
            if any(s.startswith(("drain", "down", "inval")) for s in states.values()) and not resumed:
                self.run("scontrol", "update", f"nodename={nodes}", "state=resume", check=False)
                resumed = True
            time.sleep(0.25)
        log = (d("log") / "slurmctld.log").read_text()[-2000:] if (d("log") / "slurmctld.log").exists() else ""
        self.down()
        raise ClusterError(f"the nodes did not become idle in {timeout:.0f} s; slurmctld.log ends:\n{log}")

    @staticmethod
    def _wait(cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.05)
        raise ClusterError(f"timed out waiting for {what}")

    def down(self) -> None:
        """Cancel every job, wait for their processes to go, stop the daemons."""
        if self._pid("slurmctld") is not None:
            self.run("scancel", "--full", "-u", "root", check=False, timeout=30)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                r = self.run("squeue", "-h", "-o", "%i", check=False, timeout=10)
                if r.returncode != 0 or not r.stdout.strip():
                    break
                time.sleep(0.25)
        for stem, daemon in self._daemons():  # munged last: the others talk through it while stopping
            pid = self._pid(stem, daemon)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                self._wait(lambda p=pid, n=daemon: not _alive(p, n), 15, f"{daemon} to stop")
            except ClusterError:
                os.kill(pid, signal.SIGKILL)

    # --- jobs
    def job_states(self, job_id: str) -> dict[str, dict]:
        """``{job id (array tasks as 12_3): fields}`` from ``scontrol show job -o``."""
        r = self.run("scontrol", "show", "job", "-o", str(job_id), check=False, timeout=15)
        out: dict[str, dict] = {}
        for line in r.stdout.splitlines():
            fields = {}
            for tok in line.split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    fields.setdefault(k, v)
            if "JobId" not in fields:
                continue
            jid = fields["JobId"]
            if fields.get("ArrayTaskId") and fields.get("ArrayJobId"):
                jid = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
            out[jid] = fields
        return out

    def wait(self, job_ids, timeout: float) -> dict[str, dict]:
        """Wait until every job (and array task) of ``job_ids`` is finished; their fields."""
        final = {
            "COMPLETED",
            "FAILED",
            "CANCELLED",
            "TIMEOUT",
            "NODE_FAIL",
            "OUT_OF_MEMORY",
            "BOOT_FAIL",
            "DEADLINE",
            "PREEMPTED",
        }
        ids = [job_ids] if isinstance(job_ids, (str, int)) else list(job_ids)
        deadline = time.monotonic() + timeout
        while True:
            states: dict[str, dict] = {}
            for j in ids:
                states.update(self.job_states(j))
            if (
                states
                and all(f.get("JobState") in final for f in states.values())
                and all(any(k == str(j) or k.startswith(f"{j}_") for k in states) for j in ids)
            ):
                return states
            if time.monotonic() > deadline:
                summary = {k: (f.get("JobState"), f.get("Reason")) for k, f in states.items()}
                raise ClusterError(f"jobs {ids} not finished after {timeout:.0f} s: {summary}")
            time.sleep(0.5)
