"""The Open Inference Protocol (KServe's "V2" REST protocol) with Triton's binary tensor
extension, on the service's port: ``tensors`` holds the wire format (request decoding, answer
encoding), ``inputs`` turns tensors into the instances ``service.validation`` checks,
``metadata`` the server's and the model's metadata, ``endpoint`` the ASGI routes."""
