"""Tiny settings that train every agent in seconds, two seeds in one program: the runs that the
resume and load tests share (one training per agent per session, see conftest.tiny_run)."""

# algo -> (env, run length, --set overrides)
TINY_RUNS = {
    "pets": ("fast/PointMass", 200, ["initial_episodes=1", "population=16", "iterations=2",
                                     "model_train_steps=20", "eval_every=1"]),
    "dreamer": ("fast/PointMass", 64 + 3 * 5 * 32,
                ["size=debug", "units=32", "deter=32", "hidden=32", "num_envs=2",
                 "steps_per_iteration=16", "prefill=64", "batch_size=4", "seq_len=16",
                 "train_ratio=8", "imagine_starts=16", "eval_every=5", "eval_episodes=1"]),
    "mbpo": ("fast/PointMass", 100 + 3 * 20,
             ["prefill_steps=100", "steps_per_iteration=20", "model_train_steps=10",
              "rollout_batch=50", "hidden_sizes=16,16", "sac_hidden_sizes=16,16",
              "model_batch_size=32", "sac_batch_size=32",
              "updates_per_step=1", "eval_every=2", "eval_episodes=1"]),
    "muzero": ("fast/PointMassDiscrete", 3 * 10 * 16,
               ["num_envs=8", "steps_per_iteration=2", "eval_games=2", "num_simulations=4",
                "updates_per_iteration=1", "batch_size=8", "latent=8", "hidden=16",
                "eval_every=10"]),
    "worldmodels": ("fast/PointMassPixels", 2,
                    ["episodes=4", "latent_size=2", "vae_depth=4", "vae_batch_size=4",
                     "hidden_size=2", "num_mixtures=2", "mdn_batch_size=2", "population_size=16",
                     "rollouts=1", "eval_episodes=1", "vae_epochs=2", "mdn_epochs=2",
                     "vae_epochs_per_chunk=1", "mdn_epochs_per_chunk=1", "eval_every=1"]),
    "dyna": ("grid/dyna_maze", 400, ["planning_steps=5"]),
    "trpo": ("fast/PointMass", 4 * 4 * 16,
             ["num_envs=4", "rollout_length=16", "value_minibatches=2", "policy_hidden_sizes=8",
              "value_hidden_sizes=8", "eval_every=1", "eval_episodes=2"]),
}
