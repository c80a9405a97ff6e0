"""What every grid worker imports, imported once by the server that local workers fork from
(`imbal_keras.grid.launch.worker_context`): TensorFlow and Keras without starting TensorFlow's runtime, and the
training code. Each worker then sizes its thread pools and starts the runtime itself (`worker.configure_worker`).
"""

from imbal_keras import quiet

quiet.import_tensorflow()

from imbal_keras.training import experiment  # noqa: E402, F401

__all__: list[str] = []
