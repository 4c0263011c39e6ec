// reprise vs llama.cpp (llama-bench from node-llama-cpp's prebuilt CPU
// libraries), same models, same threads, same sizes, alternating the engines
// rep by rep. Prints a markdown table with the ratio reprise / llama.cpp per
// row, and each decode figure as GB/s of weights read and as a fraction of
// this machine's memory read bandwidth (measured by membw_bench in the run).
//
// Usage (after `make build`):
//   node bench/peer_bench.mjs [--threads 2,1] [--reps 3] [--pp 512] [--tg 128]
//                             [--models q8_0,q4_0,q4_k,f16,demo,stories]
// Writes test models to build/bench-models/, builds llama-bench into
// build/peer/ (nothing of the peer is committed).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, realpathSync, symlinkSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
const threadList = (args.threads ?? "2,1").split(",").map(Number);
const reps = Number(args.reps ?? 3);
const pp = Number(args.pp ?? 512);
const tg = Number(args.tg ?? 128);
const modelNames = (args.models ?? "q8_0,q4_0,q4_k,f16,demo,stories").split(",");

const reprise = join(root, "build/bin/reprise");
const membw = join(root, "build/bin/membw_bench");
const fixtures = resolve(root, "../shared/fixtures");
const modelsDir = join(root, "build/bench-models");
const peerDir = join(root, "build/peer");

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { encoding: "utf8", maxBuffer: 1 << 26, ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${argv.join(" ")} failed (${r.status}):\n${r.stderr}`);
  }
  return r.stdout;
}
const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function ensurePeer() {
  const bin = join(peerDir, "bin/llama-bench");
  if (existsSync(bin)) return bin;
  const peerPkg = join(root, "bench/peer");
  if (!existsSync(join(peerPkg, "node_modules/node-llama-cpp"))) {
    console.error("installing node-llama-cpp@3.21.1 (prebuilt llama.cpp) ...");
    run("npm", ["ci", "--no-audit", "--no-fund"], {
      cwd: peerPkg,
      env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true" },
    });
  }
  mkdirSync(join(peerDir, "bin"), { recursive: true });
  const src = join(peerDir, "src");
  if (!existsSync(src)) {
    run("git", ["clone", "-q", join(peerPkg, "node_modules/node-llama-cpp/llama/gitRelease.bundle"), src]);
  }
  const libs = join(peerPkg, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64");
  for (const f of readdirSync(libs).filter((f) => f.endsWith(".so"))) {
    const dst = join(peerDir, "bin", f);
    if (!existsSync(dst)) symlinkSync(realpathSync(join(libs, f)), dst);
  }
  console.error("building llama-bench against the prebuilt libraries ...");
  run("g++", [
    "-O2", "-DNDEBUG", "-std=c++17",
    "-I", join(src, "include"), "-I", join(src, "common"), "-I", join(src, "ggml/include"),
    "-I", join(src, "vendor"),
    join(src, "tools/llama-bench/llama-bench.cpp"), join(src, "tools/llama-bench/main.cpp"),
    "-o", bin, "-L", join(peerDir, "bin"),
    "-l:libllama-common.so", "-l:libllama.v0.4.0.so", "-l:libggml.v0.4.0.so", "-l:libggml-base.so",
    "-Wl,-rpath,$ORIGIN", "-lpthread",
  ]);
  return bin;
}

function ensureModel(name) {
  if (name === "stories") return join(fixtures, "stories260K/stories260K.gguf");
  mkdirSync(modelsDir, { recursive: true });
  const path = join(modelsDir, name === "demo" ? "demo.gguf" : `tinyllama-${name}.gguf`);
  if (!existsSync(path)) {
    const argv = name === "demo"
      ? ["make-model", "--preset", "demo", "--type", "q8_0", "--out", path]
      : ["make-model", "--preset", "tinyllama", "--type", name, "--vocab-from",
         join(fixtures, "vocab/ggml-vocab-llama-spm.gguf"), "--out", path];
    console.error(`writing ${path} ...`);
    run(reprise, argv);
    execFileSync("sync");
  }
  return path;
}

const llamaBench = ensurePeer();
const bandwidth = {};
for (const t of threadList) {
  bandwidth[t] = JSON.parse(run(membw, [String(t), "1024", "7", "--json"])).read_gb_per_s;
  console.error(`memory read bandwidth, ${t} threads: ${bandwidth[t].toFixed(2)} GB/s`);
}

const rows = [];
for (const name of modelNames) {
  const model = ensureModel(name);
  for (const t of threadList) {
    const r = { name, t, rpp: [], rtg: [], lpp: [], ltg: [], bytes: 0, frac: [] };
    for (let i = 0; i < reps; ++i) {
      // This VM's bandwidth drifts over minutes (other tenants), so it is
      // measured again right before each decode it is compared with.
      const bw = JSON.parse(run(membw, [String(t), "512", "3", "--json"])).read_gb_per_s;
      const ours = JSON.parse(run(reprise, ["bench", "--model", model, "--threads", String(t),
        "--pp", String(pp), "--tg", String(tg), "--reps", "1", "--json"]));
      r.rpp.push(ours.pp_tok_per_s);
      r.rtg.push(ours.tg_tok_per_s);
      r.frac.push((ours.tg_tok_per_s * ours.weight_bytes) / 1e9 / bw);
      r.bytes = ours.weight_bytes;
      const lp = JSON.parse(run(llamaBench, ["-m", model, "-t", String(t), "-p", String(pp), "-n", "0",
        "-r", "1", "-o", "json"]));
      r.lpp.push(lp[0].avg_ts);
      const lt = JSON.parse(run(llamaBench, ["-m", model, "-t", String(t), "-p", "0", "-n", String(tg),
        "-d", String(pp), "-r", "1", "-o", "json"]));
      r.ltg.push(lt[0].avg_ts);
      console.error(`${name} t${t} rep ${i + 1}: reprise pp ${ours.pp_tok_per_s.toFixed(1)} tg ${ours.tg_tok_per_s.toFixed(1)}` +
        ` | llama.cpp pp ${lp[0].avg_ts.toFixed(1)} tg ${lt[0].avg_ts.toFixed(1)}`);
    }
    rows.push(r);
  }
}

const f = (x, d = 1) => x.toFixed(d);
console.log(`pp${pp} and tg${tg} (after ${pp} tokens), tok/s, median of ${reps} alternating runs; ` +
  `memory read bandwidth at the start: ${threadList.map((t) => `${f(bandwidth[t], 1)} GB/s at ${t} threads`).join(", ")}; ` +
  `"% of bandwidth" is the median over reps of the decode's GB/s over the bandwidth measured just before it\n`);
console.log("| model | threads | pp reprise | pp llama.cpp | pp ratio | tg reprise | tg llama.cpp | tg ratio | tg GB/s (reprise) | % of bandwidth |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  const rpp = median(r.rpp), lpp = median(r.lpp), rtg = median(r.rtg), ltg = median(r.ltg);
  const gbs = (rtg * r.bytes) / 1e9;
  console.log(`| ${r.name} | ${r.t} | ${f(rpp)} | ${f(lpp)} | ${f(rpp / lpp, 2)}x | ${f(rtg)} | ${f(ltg)} | ` +
    `${f(rtg / ltg, 2)}x | ${f(gbs, 2)} | ${f(100 * median(r.frac), 0)}% |`);
}
