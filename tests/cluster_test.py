"""The local launcher, the workers' environments and the cluster examples
(`keras_meta.cluster`, `examples/cluster/`)."""

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from keras_meta import cluster
from keras_meta import testing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "cluster")

# Prints what a worker was told: its TF_CONFIG and Keras's variables.
_REPORT = ("import json, os; print(json.dumps({k: os.environ[k] for k in "
           "('TF_CONFIG', 'KERAS_DISTRIBUTION_JOB_ADDRESSES', "
           "'KERAS_DISTRIBUTION_NUM_PROCESSES', "
           "'KERAS_DISTRIBUTION_PROCESS_ID')}))")


class WorkerEnvironmentsTest(testing.TestCase):
    def test_tf_config_and_keras_variables(self):
        addresses = ["10.0.0.1:2222", "10.0.0.2:2222", "host-c:3333"]
        environments = cluster.worker_environments(addresses)
        self.assertLen(environments, 3)
        for index, env in enumerate(environments):
            self.assertEqual(json.loads(env["TF_CONFIG"]), {
                "cluster": {"worker": addresses},
                "task": {"type": "worker", "index": index}})
            self.assertEqual(env["KERAS_DISTRIBUTION_JOB_ADDRESSES"],
                             "10.0.0.1:2222,10.0.0.2:2222,host-c:3333")
            self.assertEqual(env["KERAS_DISTRIBUTION_NUM_PROCESSES"], "3")
            self.assertEqual(env["KERAS_DISTRIBUTION_PROCESS_ID"],
                             str(index))

    def test_bad_addresses(self):
        with self.assertRaisesRegex(ValueError, "at least one worker"):
            cluster.worker_environments([])
        for bad in ("10.0.0.1", "host:", ":2222", "host:port"):
            with self.assertRaisesRegex(ValueError, "host:port"):
                cluster.worker_environments(["a:1", bad])

    def test_free_ports_are_distinct(self):
        ports = cluster.free_ports(4)
        self.assertLen(set(ports), 4)


class LaunchTest(testing.TestCase):
    def test_each_worker_gets_its_index(self):
        results = cluster.launch_local_workers(
            [sys.executable, "-c", _REPORT], 3, stream=False, timeout=60)
        told = [json.loads(r.stdout) for r in results]
        addresses = json.loads(told[0]["TF_CONFIG"])["cluster"]["worker"]
        self.assertLen(addresses, 3)
        self.assertLen(set(addresses), 3)
        for index, env in enumerate(told):
            config = json.loads(env["TF_CONFIG"])
            self.assertEqual(config["cluster"]["worker"], addresses)
            self.assertEqual(config["task"], {"type": "worker",
                                              "index": index})
            self.assertEqual(env["KERAS_DISTRIBUTION_PROCESS_ID"], str(index))
            self.assertEqual(env["KERAS_DISTRIBUTION_NUM_PROCESSES"], "3")
            self.assertTrue(all(a.startswith("127.0.0.1:")
                                for a in addresses))

    def test_a_failed_worker_stops_the_others(self):
        # Worker 1 fails at once; worker 0 would wait a minute (as a worker
        # waits for a lost peer in its next collective).
        script = ("import os, sys, time\n"
                  "if os.environ['KERAS_DISTRIBUTION_PROCESS_ID'] == '1':\n"
                  "    print('bad data', flush=True); sys.exit(3)\n"
                  "time.sleep(60)\n")
        start = time.monotonic()
        with self.assertRaisesRegex(RuntimeError,
                                    "Worker 1 of 2 exited with code 3"
                                    "(.|\n)*bad data"):
            cluster.launch_local_workers([sys.executable, "-c", script], 2,
                                         stream=False, timeout=120)
        self.assertLess(time.monotonic() - start, 30)

    def test_timeout_stops_every_worker(self):
        start = time.monotonic()
        with self.assertRaisesRegex(TimeoutError, "ran past 1 s"):
            cluster.launch_local_workers(
                [sys.executable, "-c", "import time; time.sleep(60)"], 2,
                stream=False, timeout=1)
        self.assertLess(time.monotonic() - start, 30)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "num_workers"):
            cluster.launch_local_workers(["true"], 0)
        with self.assertRaisesRegex(ValueError, "list of program"):
            cluster.launch_local_workers("python train.py", 2)

    def test_command_line(self):
        result = subprocess.run(
            [sys.executable, "-m", "keras_meta.cluster", "--workers", "2",
             "--", sys.executable, "-c",
             "import os; print('index', "
             "os.environ['KERAS_DISTRIBUTION_PROCESS_ID'])"],
            capture_output=True, text=True, timeout=60, cwd=ROOT)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("[worker 0] index 0", result.stdout)
        self.assertIn("[worker 1] index 1", result.stdout)
        # The launcher itself never loads TensorFlow.
        self.assertNotIn("tensorflow", result.stderr.lower())
        failed = subprocess.run(
            [sys.executable, "-m", "keras_meta.cluster", "--workers", "2",
             "--", sys.executable, "-c", "raise SystemExit(4)"],
            capture_output=True, text=True, timeout=60, cwd=ROOT)
        self.assertEqual(failed.returncode, 1)
        self.assertIn("exited with code 4", failed.stderr)
        missing = subprocess.run(
            [sys.executable, "-m", "keras_meta.cluster", "--workers", "2"],
            capture_output=True, text=True, timeout=60, cwd=ROOT)
        self.assertEqual(missing.returncode, 2)
        self.assertIn("after --", missing.stderr)


class ClusterExamplesTest(testing.TestCase):
    def test_slurm_script_parses_and_runs_the_example(self):
        path = os.path.join(EXAMPLES, "slurm.sbatch")
        subprocess.run(["bash", "-n", path], check=True)
        with open(path) as f:
            text = f.read()
        self.assertIn("#SBATCH --ntasks-per-node=1", text)
        self.assertIn("srun python examples/cluster/train.py", text)

    def test_kubernetes_job_gives_each_pod_its_index(self):
        with open(os.path.join(EXAMPLES, "kubernetes.yaml")) as f:
            service, job = yaml.safe_load_all(f)
        self.assertEqual((service["kind"], job["kind"]), ("Service", "Job"))
        # Headless: Kubernetes's string "None", not YAML's null.
        self.assertEqual(service["spec"]["clusterIP"], "None")
        spec = job["spec"]
        self.assertEqual(spec["completionMode"], "Indexed")
        pod = spec["template"]["spec"]
        self.assertEqual(pod["subdomain"], service["metadata"]["name"])
        (container,) = pod["containers"]
        # The shell line that sets TF_CONFIG, run as a pod would run it.
        export = container["args"][0].split("&&")[0]
        name = job["metadata"]["name"]
        for index in range(spec["completions"]):
            told = subprocess.run(
                ["sh", "-c", export + ' && printf %s "$TF_CONFIG"'],
                env={"JOB_COMPLETION_INDEX": str(index)},
                capture_output=True, text=True, check=True).stdout
            config = json.loads(told)
            self.assertEqual(config["task"], {"type": "worker",
                                              "index": index})
            self.assertEqual(config["cluster"]["worker"], [
                f"{name}-{i}.{pod['subdomain']}:"
                f"{service['spec']['ports'][0]['port']}"
                for i in range(spec["completions"])])
        self.assertIn("examples/cluster/train.py", container["args"][0])

    @pytest.mark.tensorflow_only
    @pytest.mark.slow  # two TensorFlow processes
    def test_example_trains_on_two_local_workers(self):
        tmp = self.get_temp_dir()
        results = cluster.launch_local_workers(
            [sys.executable, os.path.join(EXAMPLES, "train.py"), "--tiny",
             "--output", os.path.join(tmp, "maml.keras"),
             "--backup-dir", os.path.join(tmp, "backup")],
            2, stream=False, timeout=400, cwd=tmp,
            env={**os.environ, "PYTHONPATH": ROOT,
                 "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"})
        losses = [line for r in results for line in r.stdout.splitlines()
                  if "replica(s): final loss" in line]
        self.assertLen(losses, 2)
        # Both workers hold the same model after the same global steps.
        self.assertEqual(losses[0], losses[1])
        self.assertIn("2 replica(s)", losses[0])
        self.assertTrue(os.path.exists(os.path.join(tmp, "maml.keras")))
