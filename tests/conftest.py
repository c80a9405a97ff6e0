"""Test settings: quiet, single-threaded TensorFlow so the suite is fast and repeatable on 2 cores."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from imbal_keras import quiet  # noqa: E402

tf = quiet.import_tensorflow()

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
# Two logical CPU devices let the tf.distribute.MirroredStrategy tests run on one physical CPU.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)
