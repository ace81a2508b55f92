# The media fetcher on partitions, on a real Redis Cluster (3 primaries,
# 12 partitions): media of three numbers in three partitions, of an echo
# and of the history, each fetched once, announced and kept in the
# partition of its message; a redelivery not fetched again; a worker
# killed mid-download: its download taken over by the other worker, and
# its temporary file removed when a worker starts again on this host.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Digest::SHA qw(sha256);
use MIME::Base64 qw(encode_base64);
use FakeGraph;
use WaTest;
use WaCluster;
use WaBody qw(messages_body text_message change_body);
use WaPartition qw(prefixes);

my $PARTS = 12;
my @prefix = prefixes($PARTS);
sub part_of { WaPartition::part_of($_[0], $PARTS) }

my $t = WaTest->new;
my $c = WaCluster->new($t, primaries => 3, replicas => 0);
my @nodes = $c->ports;
my $seeds = $c->seeds;
$c->start_nginx($PARTS);

my $g = FakeGraph->new(dir => $t->dir);
my $graph = $g->start;
$t->write_file('token', "EAAtoken-media\n", 0600);
my $store = $t->dir . '/store';
my @worker = (cluster => $seeds, partitions => $PARTS,
              'token-file' => $t->dir . '/token', 'graph-url' => $graph,
              'media-dir' => $store, 'retry-base-ms' => 50,
              'claim-idle-ms' => 1000);
$t->start_worker(@worker, consumer => 'w1');

# a command on the node serving a partition's slot
sub on { $c->on(@_) }
sub groups_of {
    my ($prefix) = @_;
    my $g = on($prefix, 'XINFO', 'GROUPS', "$prefix:messages");
    return {} unless ref $g eq 'ARRAY';
    return { map { my $h = ref $_ eq 'HASH' ? $_ : { @$_ };
                   ($h->{name} => $h) } @$g };
}
sub media_entries {
    my ($prefix) = @_;
    my $r = on($prefix, 'XRANGE', "$prefix:media", '-', '+');
    return map { +{ @{ $_->[1] } } } @{ ref $r eq 'ARRAY' ? $r : [] };
}
sub requests_for {
    my ($id) = @_;
    my @r = grep { $_->{path} =~ m{/\Q$id\E(?:\?|$)} } $g->requests;
    return (scalar(grep { $_->{path} =~ m{^/v} } @r),
            scalar(grep { $_->{path} =~ m{^/media-file/} } @r));
}

# three numbers in three partitions
my @pn;
for (my $i = 0; @pn < 3; $i++) {
    my $pn = "1088$i";
    push @pn, $pn unless grep { part_of($_) == part_of($pn) } @pn;
}
my @pp = map { $prefix[ part_of($_) ] } @pn;
ok $t->wait_for(sub { !grep { !groups_of($_)->{'wa-relayd:media'} } @pp },
                20), "a fetcher reads each partition: @pp"
    or diag $t->worker_log;

sub media_object {
    my ($id, $bytes) = @_;
    return { id => $id, mime_type => 'image/jpeg',
             sha256 => encode_base64(sha256($bytes), '') };
}
sub post_media {
    my ($pn, $id, $bytes) = @_;
    $g->media($id, $bytes);
    my $m = text_message("wamid.cm.$id", undef, type => 'image');
    $m->{image} = media_object($id, $bytes);
    is $t->post(messages_body(phone_number_id => $pn, messages => [ $m ]))
        ->{status}, 200, "a media message to $pn: 200";
    return "wamid.cm.$id";
}

my %bytes = map { ("C$_" => "bytes of C$_ " x (100 * $_)) } 1 .. 3;
my %msg = map { ("C$_" => post_media($pn[$_ - 1], "C$_", $bytes{"C$_"})) }
          1 .. 3;

for my $i (1 .. 3) {
    my ($id, $p) = ("C$i", $pp[$i - 1]);
    ok $t->wait_for(sub { grep { $_->{media_id} eq $id } media_entries($p) },
                    20), "$id announced in $p:media" or diag $t->worker_log;
    my $key = on($p, 'HGETALL', "$p:media:$id");
    my %h = ref $key eq 'ARRAY' ? @$key : %{ $key // {} };
    is $h{sha256}, Digest::SHA::sha256_hex($bytes{$id}),
       "... $p:media:$id names the file by its digest";
    ok -f $h{path}, '... which is stored';
}

# an echo of the business app and a history message, with media
my $e = text_message('wamid.cm.echo', undef, type => 'image');
$e->{image} = media_object('C4', 'echo bytes');
$g->media('C4', 'echo bytes');
is $t->post(change_body('smb_message_echoes', {
        messaging_product => 'whatsapp',
        metadata => { display_phone_number => '15550783881',
                      phone_number_id => $pn[0] },
        message_echoes => [ { %$e, to => '16505551234' } ] }, time))->{status},
   200, 'an echo with an image: 200';
my $h = text_message('wamid.cm.hist', undef, type => 'image');
$h->{image} = media_object('C5', 'history bytes');
$g->media('C5', 'history bytes');
is $t->post(change_body('history', {
        messaging_product => 'whatsapp',
        metadata => { display_phone_number => '15550783881',
                      phone_number_id => $pn[1] },
        history => [ { threads => [ { id => '16505551234',
                                      messages => [ $h ] } ] } ] }, time))
   ->{status}, 200, 'a history message with an image: 200';
ok $t->wait_for(sub { grep { $_->{media_id} eq 'C4' } media_entries($pp[0]) },
                20), 'the echo\'s media fetched, in its number\'s partition'
    or diag $t->worker_log;
ok $t->wait_for(sub { grep { $_->{media_id} eq 'C5' } media_entries($pp[1]) },
                20), 'the history\'s media fetched, in its number\'s partition'
    or diag $t->worker_log;

# a redelivery (after the dedupe window: a new event) is not fetched again
my $again = text_message('wamid.cm.C1.again', undef, type => 'image');
$again->{image} = media_object('C1', $bytes{C1});
is $t->post(messages_body(phone_number_id => $pn[0], messages => [ $again ]))
    ->{status}, 200, 'C1 again, in another message: 200';
ok $t->wait_for(sub { (groups_of($pp[0])->{'wa-relayd:media'}{pending} // 1)
                      == 0 && (groups_of($pp[0])->{'wa-relayd:media'}
                               {'entries-read'} // 0) >= 3 }, 20),
   'read and acknowledged';
my ($res, $dl) = requests_for('C1');
is "$res $dl", '1 1', 'a media id fetched before: not again';

# killed mid-download: the other worker takes it over, once
$t->start_worker(@worker, consumer => 'w2');
$g->media('C9', 'S' x 200_000);
$g->rules([ { path => '^/media-file/C9', delay_ms => 60000, times => 1 } ]);
my $slow = post_media($pn[2], 'C9', 'S' x 200_000);
ok $t->wait_for(sub { (requests_for('C9'))[1] == 1 }, 20),
   'a slow download under way';
my @tmp = glob "$store/tmp/*";
is scalar @tmp, 1, 'its temporary file: ' . join ' ', map { s{.*/}{}r } @tmp;
# whoever holds it is killed
my $holder;
for my $w (qw(w1 w2)) {
    my $r = on($pp[2], 'XPENDING', "$pp[2]:messages", 'wa-relayd:media',
               '-', '+', 10, $w);
    $holder = $w if ref $r eq 'ARRAY' && @$r;
}
ok $holder, "held by $holder";
my $other = $holder && $holder eq 'w1' ? 'w2' : 'w1';
kill 'KILL', $t->{pids}{"worker-$holder"};
waitpid delete $t->{pids}{"worker-$holder"}, 0;
ok $t->wait_for(sub { grep { $_->{media_id} eq 'C9' } media_entries($pp[2]) },
                30), "$other takes it over and fetches it"
    or diag $t->worker_log($other);
is scalar(grep { $_->{media_id} eq 'C9' } media_entries($pp[2])), 1,
   '... once';
ok -e $tmp[0], 'the killed worker\'s temporary file is still there';
$t->start_worker(@worker, consumer => $holder);
ok $t->wait_for(sub { !-e $tmp[0] }, 20),
   'removed when a worker starts again on this host';
like $t->worker_log($holder),
     qr/media(?: of \S+)?: 1 temporary file of a stopped worker removed/,
     '... and said so';

done_testing;
