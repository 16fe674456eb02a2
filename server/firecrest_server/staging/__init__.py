"""Large-file transfers staged through this server, speaking the S3 subset clients use.

FirecREST v2 sends files above its direct limit through an external object store: the client
PUTs parts to presigned URLs, POSTs a CompleteMultipartUpload, and a transfer job moves the
object into place (or, for downloads, a job stages the file and the client GETs a presigned
URL). Here the server itself is that endpoint: the URLs point back at it, are signed with
HMAC and expire, and the parts are written straight into a staging file on the cluster, as the
user, over SFTP. Unmodified clients (pyfirecrest's large-file path) work with no object store.
"""
